import { describe, expect, it } from "vitest";
import type { AppLogLine, AppLogs } from "../../sandbox/types";
import { SseParser, type SseMessage } from "../../tests/support/sse";
import {
  APP_LOG_BATCH_LINES,
  APP_LOG_MAX_LINE_CHARS,
  appLogMessage,
  appLogStart,
  appLogStream,
  appStatusMessage,
  boundLine,
  loadAppPanel,
  NOTHING_BUILT,
  nextBatch,
  openAppLogStreams,
  type ProjectApp,
} from "./app-log.server";

const line = (seq: number, text = `line ${seq}`, stream: AppLogLine["stream"] = "stdout"): AppLogLine => ({
  seq,
  at: new Date(Date.UTC(2026, 11, 1, 0, 0, seq % 60)).toISOString(),
  stream,
  text,
});
const logsOf = (lines: AppLogLine[], truncated = false): AppLogs => ({
  lines,
  nextSeq: (lines.at(-1)?.seq ?? -1) + 1,
  truncated,
});

describe("appLogStart", () => {
  const start = (query: string, lastEventId?: string) =>
    appLogStart(
      new Request(
        `http://app.test/projects/x/app-log${query}`,
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

  it("prefers Last-Event-ID, then ?after=, then the backlog (null)", () => {
    expect(start("")).toBeNull();
    expect(start("?after=12")).toBe(12);
    expect(start("?after=-1")).toBe(-1);
    expect(start("?after=12", "40")).toBe(40);
    expect(start("", "0")).toBe(0);
    expect(start("?after=3", " ")).toBe(3);
  });

  it("answers 400 for anything but an integer of -1 or more", () => {
    for (const bad of ["-2", "1.5", "abc", "", "1e3", "9999999999999999", "--1"]) {
      expect(
        status(() => start(`?after=${encodeURIComponent(bad)}`)),
        `after=${bad}`,
      ).toBe(400);
    }
    for (const bad of ["-5", "x", "7 8"])
      expect(
        status(() => start("?after=1", bad)),
        `Last-Event-ID ${bad}`,
      ).toBe(400);
  });
});

describe("the stream's messages", () => {
  it("frames a batch with the last line's seq as its id, on one data line", () => {
    const batch = { lines: [line(4), line(5, "two\nlines\r\nand a \u2028 separator")], gap: false };
    const message = appLogMessage(batch);
    expect(message.startsWith("id: 5\nevent: log\ndata: ")).toBe(true);
    expect(message.endsWith("\n\n")).toBe(true);
    expect(message.slice(0, -2).split("\n")).toHaveLength(3);
    const [parsed] = new SseParser().push(message);
    expect(parsed).toEqual({ id: "5", event: "log", data: JSON.stringify(batch) });
    expect(JSON.parse(parsed!.data)).toEqual(batch);
    expect(() => appLogMessage({ lines: [], gap: false })).toThrow();
  });

  it("frames a status without an id, so Last-Event-ID keeps pointing at the last line", () => {
    const status = {
      state: "crashed" as const,
      command: "npm run dev",
      port: null,
      startedAt: null,
      restarts: 2,
      reason: "exited with code 1\nsee the log",
      nextRestartAt: null,
      controllable: true,
    };
    const [parsed] = new SseParser().push(appStatusMessage(status));
    expect(parsed!.id).toBeUndefined();
    expect(parsed!.event).toBe("status");
    expect(JSON.parse(parsed!.data)).toEqual(status);
  });

  it("cuts a long line and says how much it left out", () => {
    const long = line(1, "x".repeat(APP_LOG_MAX_LINE_CHARS + 123));
    const cut = boundLine(long);
    expect(cut.text.startsWith("x".repeat(APP_LOG_MAX_LINE_CHARS))).toBe(true);
    expect(cut.text.endsWith(" [… 123 characters omitted …]")).toBe(true);
    expect(boundLine(line(2, "short"))).toEqual(line(2, "short"));
  });
});

describe("nextBatch", () => {
  it("sends only lines after the last one sent, whether sinceSeq counted inclusively or not", () => {
    const logs = logsOf([line(3), line(4), line(5)]);
    expect(nextBatch(logs, 3)).toEqual({ lines: [line(4), line(5)], gap: false, lastSeq: 5 });
    expect(nextBatch(logs, 5)).toEqual({ lines: [], gap: false, lastSeq: 5 });
    expect(nextBatch(logsOf([]), 5)).toEqual({ lines: [], gap: false, lastSeq: 5 });
  });

  it("marks a gap when lines between the last sent and the first new one are missing", () => {
    expect(nextBatch(logsOf([line(9), line(10)]), 4)).toMatchObject({ gap: true, lastSeq: 10 });
    // The backlog: a gap only when the supervisor says older lines were dropped.
    expect(nextBatch(logsOf([line(9)]), null).gap).toBe(false);
    expect(nextBatch(logsOf([line(9)], true), null).gap).toBe(true);
  });

  it("keeps the newest APP_LOG_BATCH_LINES of a burst, cut line by line", () => {
    const burst = Array.from({ length: APP_LOG_BATCH_LINES + 50 }, (_, i) =>
      line(i, i === APP_LOG_BATCH_LINES + 49 ? "y".repeat(APP_LOG_MAX_LINE_CHARS * 2) : undefined),
    );
    const batch = nextBatch(logsOf(burst), -1);
    expect(batch.lines).toHaveLength(APP_LOG_BATCH_LINES);
    expect(batch.lines[0]!.seq).toBe(50);
    expect(batch.gap).toBe(true);
    expect(batch.lastSeq).toBe(APP_LOG_BATCH_LINES + 49);
    expect(batch.lines.at(-1)!.text.length).toBeLessThan(APP_LOG_MAX_LINE_CHARS + 60);
  });
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
    cancel: () => body.cancel(),
    async ended() {
      for (;;) if ((await body.read()).done) return true;
    },
  };
}

describe("appLogStream without an app", () => {
  const nothing = (): Promise<ProjectApp> =>
    Promise.resolve({
      app: null,
      status: {
        state: "stopped",
        command: null,
        port: null,
        startedAt: null,
        restarts: 0,
        reason: NOTHING_BUILT,
        nextRestartAt: null,
        controllable: false,
      },
    });

  it("sends the status once, keeps looking, heartbeats, and ends (counted) when the client goes", async () => {
    const closed = new AbortController();
    let opens = 0;
    const before = openAppLogStreams();
    const response = appLogStream({
      open: () => {
        opens++;
        return nothing();
      },
      afterSeq: null,
      signal: closed.signal,
      pollMs: 10,
      heartbeatMs: 30,
    });
    expect(response.headers.get("Content-Type")).toBe("text/event-stream; charset=utf-8");
    expect(openAppLogStreams()).toBe(before + 1);
    const stream = reader(response);
    const first = await stream.next();
    expect(first.event).toBe("status");
    expect(JSON.parse(first.data)).toMatchObject({ state: "stopped", reason: NOTHING_BUILT, controllable: false });
    // Nothing changes: heartbeats only, and the project is looked at again (its first run may create the sandbox).
    expect((await stream.next()).event).toBe("heartbeat");
    expect((await stream.next()).event).toBe("heartbeat");
    expect(opens).toBeGreaterThan(1);
    closed.abort();
    expect(await stream.ended()).toBe(true);
    expect(openAppLogStreams()).toBe(before);
  });

  it("ends at once on a signal that already aborted, and when the reader cancels", async () => {
    const before = openAppLogStreams();
    const response = appLogStream({ open: nothing, afterSeq: null, signal: AbortSignal.abort() });
    expect(await reader(response).ended()).toBe(true);
    expect(openAppLogStreams()).toBe(before);

    const open = appLogStream({ open: nothing, afterSeq: 3, signal: new AbortController().signal, pollMs: 10 });
    const stream = reader(open);
    await stream.next();
    await stream.cancel();
    expect(openAppLogStreams()).toBe(before);
  });

  it("ends (the browser reconnects) when opening the app fails", async () => {
    const before = openAppLogStreams();
    const response = appLogStream({
      open: () => Promise.reject(new Response("Project not found", { status: 404 })),
      afterSeq: null,
      signal: new AbortController().signal,
    });
    expect(await reader(response).ended()).toBe(true);
    expect(openAppLogStreams()).toBe(before);
  });
});

describe("loadAppPanel", () => {
  const modalProject = { id: "11111111-1111-4111-8111-111111111111", sandboxProvider: "modal", sandboxId: "sb-gone" };

  it("does not open a remote sandbox outside the Logs view (opening an ended Modal box would create one)", async () => {
    const panel = await loadAppPanel(modalProject, { withLines: false });
    expect(panel).toEqual({
      status: expect.objectContaining({ state: "stopped", unknown: true, controllable: false }),
      lines: [],
      cursor: null,
      truncated: false,
    });
  });

  it("in the Logs view, says why a sandbox cannot be opened, and a project with none has nothing to run", async () => {
    const modal = await loadAppPanel(modalProject, { withLines: true });
    expect(modal.status).toMatchObject({
      state: "stopped",
      controllable: false,
      reason: expect.stringMatching(/MODAL_TOKEN_ID/),
    });
    expect(modal.status.unknown).toBeUndefined();
    const none = await loadAppPanel({ ...modalProject, sandboxProvider: null, sandboxId: null }, { withLines: true });
    expect(none).toMatchObject({ status: { reason: NOTHING_BUILT, controllable: false }, lines: [], cursor: -1 });
  });
});
