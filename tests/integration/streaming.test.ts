/**
 * The model's output streamed to the live card (decision 035), through the
 * real engine, BAML client and database: a builder's event stream gets
 * frames of what the model is writing (throttled, without ids, never stored)
 * before the durable tool_call; a stream that opens mid-answer gets the
 * latest frame at once; Stop mid-stream drops the model's connection before
 * the reply is finished and saves no action for that iteration.
 */
import { and, asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StreamFrame } from "../../db/run-stream-frame";
import { agentEntries, runEvents } from "../../db/schema";
import { signedInCookie } from "../support/accounts";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { connectEventStream, type EventStreamClient, type SseMessage } from "../support/sse";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;
let replay: ReplayServer;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack();
  replay = stack.replay;
  app = await import("../../app/models/runs.server");
  console.log(`[streaming] ${stack.database.driver} database, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

/** A page of HTML long enough to take a while to stream. */
const page = (lines: number) =>
  Array.from({ length: lines }, (_, i) => `<p data-i="${i}">Line ${i}: "quoted" text & more</p>`).join("\n");

async function builderWithStream() {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  const cookie = await signedInCookie(user.id);
  const client = await connectEventStream(`${stack.app.url}/projects/${project.id}/events?after=0`, { cookie });
  expect(client.response.status).toBe(200);
  return { user, project, cookie, client };
}

function frameOf(message: SseMessage): StreamFrame {
  return JSON.parse(message.data) as StreamFrame;
}

/** Messages up to and including the first that `until` accepts. */
async function messagesUntil(
  client: EventStreamClient,
  until: (message: SseMessage) => boolean,
  timeoutMs = 30_000,
): Promise<SseMessage[]> {
  const deadline = Date.now() + timeoutMs;
  const seen: SseMessage[] = [];
  for (;;) {
    const message = await client.next(Math.max(1, deadline - Date.now()));
    seen.push(message);
    if (until(message)) return seen;
  }
}

const isRunEvent = (type: string, iteration?: number) => (message: SseMessage) => {
  if (message.event !== "run-event") return false;
  const event = JSON.parse(message.data) as { type: string; data: { iteration?: number } };
  return event.type === type && (iteration === undefined || event.data.iteration === iteration);
};

const requestsOf = (model: string) => replay.requestLog.filter((r) => `openai-compatible/${r.model}` === model);

describe("streaming the model's output to the live card", () => {
  it("sends frames of a file being written, throttled and without ids, then the durable tool_call", async () => {
    const { user, project, client } = await builderWithStream();
    const content = page(60);
    const model = scripted(replay, [
      { ...turn.write("index.html", content), chunkChars: 40, chunkDelayMs: 25 },
      turn.reply("Done."),
    ]);
    const run = await app.startRun(stack.database.db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "a long page" },
      model,
    });
    const seen = await messagesUntil(client, isRunEvent("tool_call", 1));
    client.close();
    const frames = seen.filter((m) => m.event === "run-stream");
    // Ephemeral: no id, so the browser's Last-Event-ID stays on the durable rows.
    expect(frames.every((m) => m.id === undefined)).toBe(true);
    const live = frames.map(frameOf).filter((f) => !f.done);
    expect(live.length).toBeGreaterThanOrEqual(3);
    for (const frame of live) {
      expect(frame).toMatchObject({ runId: run.id, projectId: project.id, iteration: 1, skipped: 0 });
      // The partial text is the start of the content (a piece may end on a stray escape character).
      expect(content.startsWith(frame.text.slice(0, -1))).toBe(true);
    }
    const writing = live.filter((f) => f.tool === "write_file");
    expect(writing.length).toBeGreaterThanOrEqual(2);
    expect(writing.at(-1)?.path).toBe("index.html");
    const lengths = live.map((f) => f.text.length);
    expect(lengths).toEqual([...lengths].sort((a, b) => a - b));
    expect(new Set(live.map((f) => f.streamId)).size).toBe(1);
    // Throttled: fewer frames than the pieces the model sent (one per 100 ms at most; ~80 pieces over ~2 s).
    const [request] = requestsOf(model);
    expect(request?.outcome).toBe("completed");
    expect(live.length).toBeLessThan(request!.chunksSent);

    const last = await waitForRunToFinish(stack.database, run, 30_000);
    expect(last.type).toBe("complete");
    // The durable record is as before: no row per frame, the action saved whole.
    const rows = await stack.database.db
      .select({ type: runEvents.type })
      .from(runEvents)
      .where(eq(runEvents.runId, run.id))
      .orderBy(asc(runEvents.id));
    expect(rows.filter((r) => r.type === "tool_call")).toHaveLength(1);
    expect(rows.length).toBeLessThan(20);
    const [action] = await stack.database.db
      .select()
      .from(agentEntries)
      .where(and(eq(agentEntries.runId, run.id), eq(agentEntries.iteration, 1), eq(agentEntries.kind, "action")));
    expect((action?.payload as { action?: { content?: string } }).action?.content).toBe(content);
  });

  it("gives a stream that opens mid-answer the latest frame at once", async () => {
    const { user, project, cookie, client } = await builderWithStream();
    const content = page(12);
    // Long pauses between pieces: a frame the late client gets before the next piece can only be the kept one.
    const model = scripted(replay, [
      { ...turn.write("slow.html", content), chunkChars: 120, chunkDelayMs: 2_000 },
      turn.reply("Done."),
    ]);
    const run = await app.startRun(stack.database.db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "a slow page" },
      model,
    });
    const first = await messagesUntil(client, (m) => m.event === "run-stream" && frameOf(m).text.length > 0);
    const seenByFirst = frameOf(first.at(-1)!);
    const late = await connectEventStream(`${stack.app.url}/projects/${project.id}/events?after=0`, { cookie });
    const lateFrame = frameOf(await late.nextOf("run-stream", 1_500));
    // Pending frames of the first client (if a piece came meanwhile) are newer still.
    const newer = client
      .pending()
      .filter((m) => m.event === "run-stream")
      .map(frameOf);
    const latestOfFirst = newer.at(-1) ?? seenByFirst;
    expect(lateFrame).toMatchObject({ runId: run.id, iteration: 1, streamId: seenByFirst.streamId });
    expect(lateFrame.seq).toBe(latestOfFirst.seq);
    expect(lateFrame.text).toBe(latestOfFirst.text);
    late.close();
    client.close();
    await app.stopRun(stack.database.db, { userId: user.id, runId: run.id });
    expect((await waitForRunToFinish(stack.database, run, 15_000)).type).toBe("stopped");
  });

  it("aborts the stream at once on Stop: the model's connection is dropped and no action is saved", async () => {
    const { user, project, client } = await builderWithStream();
    const content = page(200);
    const model = scripted(replay, [
      { ...turn.write("big.html", content), chunkChars: 20, chunkDelayMs: 30 },
      turn.reply("Done."),
    ]);
    const run = await app.startRun(stack.database.db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "a big page" },
      model,
    });
    await messagesUntil(client, (m) => m.event === "run-stream" && frameOf(m).text.length > 100);
    const askedAt = Date.now();
    expect(await app.stopRun(stack.database.db, { userId: user.id, runId: run.id })).toEqual({
      stopping: true,
      status: "stopping",
    });
    const last = await waitForRunToFinish(stack.database, run, 15_000);
    expect(last.type).toBe("stopped");
    // The whole reply would take ~10 s to send (about 500 pieces, 30 ms apart).
    expect(Date.now() - askedAt).toBeLessThan(5_000);
    const requests = requestsOf(model);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ turn: 0, stream: true, outcome: "aborted" });
    expect(requests[0]!.chunksSent).toBeLessThan(Math.ceil(content.length / 20));
    // No action and no tool_call for the iteration the stop cut short.
    const entries = await stack.database.db
      .select({ kind: agentEntries.kind })
      .from(agentEntries)
      .where(and(eq(agentEntries.runId, run.id), eq(agentEntries.iteration, 1)));
    expect(entries.map((e) => e.kind)).not.toContain("action");
    const rows = await stack.database.db
      .select({ type: runEvents.type })
      .from(runEvents)
      .where(eq(runEvents.runId, run.id));
    expect(rows.map((r) => r.type)).not.toContain("tool_call");
    // The live card is told to drop the partial.
    const rest = await messagesUntil(client, (m) => m.event === "run-stream" && frameOf(m).done === true, 10_000);
    expect(rest.length).toBeGreaterThan(0);
    client.close();
  });

  it("keeps a frame of hostile text within a NOTIFY payload, cut at the front", async () => {
    const { user, project, client } = await builderWithStream();
    // NUL, lone surrogates, quotes, emoji and 30,000 characters: the frame keeps the end, under 8000 bytes.
    const content = `${"\u0000\ud800\"'😀".repeat(6_000)}THE END`;
    const model = scripted(replay, [{ ...turn.write("odd.txt", content), chunkChars: 6_000, chunkDelayMs: 50 }]);
    const run = await app.startRun(stack.database.db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "odd bytes" },
      model,
    });
    // Whether the action is saved or refused as unstorable, the frames came first.
    const seen = await messagesUntil(client, (m) => isRunEvent("tool_call", 1)(m) || isRunEvent("tool_result", 1)(m));
    client.close();
    const live = seen
      .filter((m) => m.event === "run-stream")
      .map(frameOf)
      .filter((f) => !f.done && f.text.length > 0);
    expect(live.length).toBeGreaterThan(0);
    for (const frame of live) expect(Buffer.byteLength(JSON.stringify(frame))).toBeLessThan(8_000);
    const last = live.at(-1)!;
    expect(last.skipped).toBeGreaterThan(0);
    // The end of what was written so far is kept (the front is what was cut).
    expect(last.text.length).toBeGreaterThan(1_000);
    await app.stopRun(stack.database.db, { userId: user.id, runId: run.id });
    await waitForRunToFinish(stack.database, run, 15_000);
  });
});
