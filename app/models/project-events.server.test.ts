import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendRunEvent, runEventsBus } from "../../db/run-events";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder, createQueuedRun } from "../../tests/support/fixtures";
import { SseParser, type SseMessage } from "../../tests/support/sse";
import { eventStreamStart, openEventStreams, projectEventStream } from "./project-events.server";

describe("eventStreamStart", () => {
  const start = (query: string, lastEventId?: string) =>
    eventStreamStart(
      new Request(
        `http://app.test/projects/x/events${query}`,
        lastEventId === undefined ? {} : { headers: { "Last-Event-ID": lastEventId } },
      ),
    );
  const status = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      return (error as Response).status;
    }
    return "no error";
  };

  it("prefers Last-Event-ID, then ?after=, then 0", () => {
    expect(start("")).toBe(0);
    expect(start("?after=12")).toBe(12);
    expect(start("?after=12", "40")).toBe(40);
    expect(start("", "0")).toBe(0);
    expect(start("?after=3", "")).toBe(3);
  });

  it("answers 400 for anything but a non-negative integer", () => {
    for (const bad of ["-1", "1.5", "abc", "", "1e3", "99999999999999999"]) {
      expect(
        status(() => start(`?after=${encodeURIComponent(bad)}`)),
        `after=${bad}`,
      ).toBe(400);
    }
    for (const bad of ["-1", "x", "7 8"])
      expect(
        status(() => start("?after=1", bad)),
        `Last-Event-ID ${bad}`,
      ).toBe(400);
  });
});

describe.each(availableDrivers())("projectEventStream on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  /** Reads a stream's body as SSE messages. */
  function reader(response: Response) {
    const body = response.body!.getReader();
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const queue: SseMessage[] = [];
    return {
      async next(): Promise<SseMessage> {
        while (queue.length === 0) {
          const { done, value } = await body.read();
          if (done) throw new Error("stream ended");
          queue.push(...parser.push(decoder.decode(value, { stream: true })));
        }
        return queue.shift()!;
      },
      async nextOf(event: string) {
        for (;;) {
          const message = await this.next();
          if (message.event === event) return message;
        }
      },
      cancel: () => body.cancel(),
      async ended() {
        for (;;) if ((await body.read()).done) return true;
      },
    };
  }

  async function settled() {
    await expect.poll(() => [openEventStreams(), runEventsBus(t.database).size], { timeout: 5_000 }).toEqual([0, 0]);
  }

  it("sends a heartbeat at once and then every interval, without an id", async () => {
    const { project } = await createBuilder(t.database.db);
    const client = new AbortController();
    const response = projectEventStream(t.database, { projectId: project.id, signal: client.signal, heartbeatMs: 40 });
    expect(response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    const stream = reader(response);
    const beats = [await stream.next(), await stream.next(), await stream.next()];
    for (const beat of beats) expect(beat).toEqual({ id: undefined, event: "heartbeat", data: "{}" });
    client.abort();
    expect(await stream.ended()).toBe(true);
    await settled();
  });

  it("replays rows after the start, then streams new ones, and cleans up when the body is cancelled", async () => {
    const { user, project } = await createBuilder(t.database.db);
    const run = await createQueuedRun(t.database.db, { userId: user.id, projectId: project.id });
    const append = (type: string, data: Record<string, unknown> = {}) =>
      appendRunEvent(t.database.db, { runId: run.id, projectId: project.id, type, data }).then((row) => row!);
    const first = await append("one");
    const second = await append("two", { n: 2 });

    const response = projectEventStream(t.database, {
      projectId: project.id,
      afterId: first.id,
      signal: new AbortController().signal,
    });
    const stream = reader(response);
    const replayed = await stream.nextOf("run-event");
    expect(replayed.id).toBe(String(second.id));
    expect(JSON.parse(replayed.data)).toEqual({
      id: second.id,
      runId: run.id,
      type: "two",
      data: { n: 2 },
      createdAt: second.createdAt.toISOString(),
    });
    await expect.poll(() => runEventsBus(t.database).size).toBe(1);

    const third = await append("three");
    expect((await stream.nextOf("run-event")).id).toBe(String(third.id));
    await stream.cancel();
    await settled();
  });

  it("closes at once when the client is already gone", async () => {
    const { project } = await createBuilder(t.database.db);
    const response = projectEventStream(t.database, { projectId: project.id, signal: AbortSignal.abort() });
    expect(await reader(response).ended()).toBe(true);
    await settled();
  });
});
