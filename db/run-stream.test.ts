import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { streamPublisher } from "../inngest/agent/stream-publisher";
import { availableDrivers, reserveTestDatabase, type ReservedDatabase } from "../tests/support/database";
import { createDatabase, type Database } from "./client";
import { publishFrame, RunStreamBus, runStreamBus } from "./run-stream";
import { fitFrame, MAX_FRAME_BYTES, parseFrame, partialFields, type StreamFrame } from "./run-stream-frame";

const frame = (over: Partial<StreamFrame> = {}): StreamFrame => ({
  runId: "r1",
  projectId: "p1",
  iteration: 1,
  streamId: "s1",
  seq: 1,
  text: "hello",
  skipped: 0,
  at: Date.now(),
  ...over,
});

describe("stream frames", () => {
  it("fit a NOTIFY payload, keeping the end of the text, whatever the text holds", () => {
    const hostile = `${'\u0000\ud800"\\😀é\n'.repeat(20_000)}THE END`;
    const fitted = fitFrame(frame({ text: hostile, path: "p".repeat(5_000) }));
    const payload = JSON.stringify(fitted);
    expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(fitted.text.endsWith("THE END")).toBe(true);
    expect(fitted.skipped + fitted.text.length).toBe(hostile.length);
    expect(fitted.path!.length).toBeLessThan(400);
    // Valid text for Postgres: NUL and the lone surrogate are escaped in the JSON, not raw.
    expect(payload.includes("\u0000")).toBe(false);
    expect(payload).toBe(Buffer.from(payload, "utf8").toString("utf8"));
    // A small frame is left as it is.
    const small = frame();
    expect(fitFrame({ ...small })).toEqual(small);
  });

  it("read only what they are: partials' fields, and well-formed frames", () => {
    expect(partialFields({ tool: "write_file", path: "a.html", content: "<p>" })).toEqual({
      tool: "write_file",
      path: "a.html",
      text: "<p>",
    });
    expect(partialFields({ tool: "reply_to_user", message: "Hi" })).toEqual({ tool: "reply_to_user", text: "Hi" });
    expect(partialFields({ tool: "run_command", command: "ls", timeout_seconds: null })).toMatchObject({ text: "ls" });
    expect(partialFields(null)).toEqual({ text: "" });
    const wellFormed = frame();
    expect(parseFrame({ ...wellFormed })).toEqual(wellFormed);
    expect(parseFrame({ ...frame(), seq: "1" })).toBeUndefined();
    expect(parseFrame({ ...frame(), tool: 5 })).toBeUndefined();
    expect(parseFrame("x")).toBeUndefined();
  });
});

describe("the frame bus", () => {
  const bus = () => new RunStreamBus({ listen: async () => async () => {} } as unknown as Database);

  it("keeps the newest frame of a stream, hands a late subscriber the latest, and forgets it on done", async () => {
    const b = bus();
    const early = await b.subscribe("p1");
    b.receive(JSON.stringify(frame({ seq: 2, text: "two" })));
    b.receive(JSON.stringify(frame({ seq: 1, text: "one" }))); // Reordered: older, ignored.
    b.receive(JSON.stringify(frame({ projectId: "p2", runId: "r2", text: "elsewhere" })));
    b.receive("not json");
    expect(early.take().map((f) => f.text)).toEqual(["two"]);
    const late = await b.subscribe("p1");
    expect(late.take().map((f) => f.text)).toEqual(["two"]);
    b.receive(JSON.stringify(frame({ seq: 3, text: "", done: true })));
    expect(b.latestFrame("r1")).toBeUndefined();
    expect(early.take()).toMatchObject([{ done: true }]);
    // A frame of the ended stream that comes after its done changes nothing.
    b.receive(JSON.stringify(frame({ seq: 2, text: "two again" })));
    expect(b.latestFrame("r1")).toBeUndefined();
    // A new stream of the run (the next iteration) shows again.
    b.receive(JSON.stringify(frame({ streamId: "s2", iteration: 2, text: "next" })));
    expect(b.latestFrame("r1")?.text).toBe("next");
    early.close();
    late.close();
    expect(b.size).toBe(0);
  });

  it("coalesces frames for a slow subscriber and wakes a waiting one", async () => {
    const b = bus();
    const subscriber = await b.subscribe("p1");
    const woken = subscriber.wait();
    for (let seq = 1; seq <= 50; seq++) b.receive(JSON.stringify(frame({ seq, text: `t${seq}` })));
    await woken;
    expect(subscriber.take().map((f) => f.text)).toEqual(["t50"]);
    const closing = subscriber.wait();
    subscriber.close();
    await closing;
  });

  it("drops a latest frame whose publisher went quiet for minutes", async () => {
    const b = bus();
    b.receive(JSON.stringify(frame({ at: Date.now() - 10 * 60_000 })));
    expect(b.latestFrame("r1")).toBeUndefined();
  });
});

describe.each(availableDrivers())("frames over NOTIFY on %s", (driver) => {
  let reserved: ReservedDatabase;
  let a: Database;
  let b: Database;
  beforeAll(async () => {
    reserved = await reserveTestDatabase(driver);
    a = createDatabase(reserved.options);
    await a.migrate();
    // Postgres: a second connection pool, as another replica has. PGlite is one process: the same database.
    b = driver === "postgres" ? createDatabase(reserved.options) : a;
  });
  afterAll(async () => {
    if (b !== a) await b?.close();
    await a?.close();
    await reserved?.release();
  });

  it("reach a subscriber on the other side, throttled, and end with done", async () => {
    const subscriber = await runStreamBus(b).subscribe("p-notify");
    const publisher = streamPublisher(
      a,
      { runId: "r-notify", projectId: "p-notify", iteration: 1 },
      { intervalMs: 100 },
    );
    const received: StreamFrame[] = [];
    const reading = (async () => {
      for (;;) {
        await subscriber.wait();
        const frames = subscriber.take();
        received.push(...frames);
        if (frames.some((f) => f.done)) return;
      }
    })();
    const started = performance.now();
    for (let i = 1; i <= 40; i++) {
      publisher.partial({ tool: "write_file", path: "a.txt", content: "x".repeat(i * 10) });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const elapsed = performance.now() - started;
    await publisher.close();
    await reading;
    subscriber.close();
    // 40 partials over ~0.4 s: a handful of frames, not 40.
    expect(publisher.sent).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 2);
    expect(publisher.sent).toBeGreaterThanOrEqual(2);
    const live = received.filter((f) => !f.done);
    expect(live.length).toBeGreaterThan(0);
    expect(live.every((f, i) => i === 0 || f.seq > live[i - 1]!.seq)).toBe(true);
    expect(received.at(-1)).toMatchObject({ done: true, runId: "r-notify" });
    expect(runStreamBus(b).latestFrame("r-notify")).toBeUndefined();
  });

  it("a failed publish is logged once and never thrown at the model call", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const broken = { db: { execute: () => Promise.reject(new Error("db down")) } } as unknown as Database;
    const publisher = streamPublisher(broken, { runId: "r", projectId: "p", iteration: 1 }, { intervalMs: 0 });
    for (let i = 0; i < 5; i++) {
      publisher.partial({ tool: "reply_to_user", message: `m${i}` });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await publisher.close();
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();
    await expect(publishFrame(broken, frame())).rejects.toThrow("db down");
  });
});
