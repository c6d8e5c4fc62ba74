/**
 * Stop through the real engine: `agent/stop` is matched by cancelOn between
 * steps, and the process running the current step hears the stop and aborts
 * it (the model request, a running command). The run ends `stopped` within a
 * few seconds, nothing runs after the stop, and the next prompt continues
 * from a conversation that says the run was stopped.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, messages, runEvents, runs } from "../../db/schema";
import { engineRunsForPrompt } from "../support/engine-api";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

let stack: Stack;
let replay: ReplayServer;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack();
  replay = stack.replay;
  app = await import("../../app/models/runs.server");
  console.log(`[cancel] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

/** A session that would go on for a long time: small steps, each answered after `delayMs`. */
const longSession = (steps: number, delayMs = 100): Turn[] =>
  Array.from({ length: steps }, (_, i) => turn.run(`echo ${i + 1} >> steps.txt`, { delayMs }));

const eventsOf = (runId: string) =>
  stack.database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.id));

/** Nothing but the closing row may follow the `stopping` row. */
async function expectNothingAfterStop(runId: string) {
  const rows = await eventsOf(runId);
  const stop = rows.findIndex((r) => r.type === "stopping");
  expect(stop).toBeGreaterThan(-1);
  const after = rows.slice(stop + 1).map((r) => r.type);
  // A tool result may land after the stop: it is the killed command's own result; versions keep the partial work.
  expect(after.filter((t) => t !== "tool_result" && t !== "version")).toEqual(["stopped"]);
  return rows;
}

describe("stopping a run", () => {
  it("aborts a slow model call at once instead of waiting for the answer", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.write("a.txt", "a"),
      turn.write("b.txt", "b", { delayMs: 60_000 }),
      turn.reply("done"),
    ]);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "slow model" },
      model,
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "thinking" && row.data.iteration === 2,
    });
    await new Promise((resolve) => setTimeout(resolve, 300)); // the model request is in flight

    const askedAt = Date.now();
    expect(await app.stopRun(db, { userId: user.id, runId: run.id })).toEqual({ stopping: true, status: "stopping" });
    const last = await waitForRunToFinish(stack.database, run, 15_000);
    expect(last.type).toBe("stopped");
    // Well before the model's 60 s answer; "a few seconds", with room for a slow machine.
    expect(Date.now() - askedAt).toBeLessThan(10_000);

    const rows = await expectNothingAfterStop(run.id);
    expect(rows.filter((r) => r.type === "tool_call").map((r) => r.data.iteration)).toEqual([1]);
    expect(existsSync(path.join(stack.workspace(project.id), "b.txt"))).toBe(false);
    const [stopped] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(stopped).toMatchObject({ status: "stopped", iteration: 2, error: null });
  });

  it("kills a long sandbox command, and the next prompt continues from a conversation that says so", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.run("sleep 60; echo late > late.txt"),
      // The next prompt's turn: the model is told about the stop (checked below), then answers.
      turn.reply("Picking up after the stop."),
    ]);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "long command" },
      model,
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call",
    });
    await new Promise((resolve) => setTimeout(resolve, 500)); // the command is running

    const askedAt = Date.now();
    await app.stopRun(db, { userId: user.id, runId: run.id });
    expect((await waitForRunToFinish(stack.database, run, 15_000)).type).toBe("stopped");
    expect(Date.now() - askedAt).toBeLessThan(10_000);
    await expectNothingAfterStop(run.id);

    // Killed, with its background children: nothing it would do later happens.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(existsSync(path.join(stack.workspace(project.id), "late.txt"))).toBe(false);
    const entries = await db
      .select()
      .from(agentEntries)
      .where(eq(agentEntries.runId, run.id))
      .orderBy(asc(agentEntries.id));
    expect(entries.map((e) => e.kind)).toEqual(["user", "action", "result", "stopped"]);
    expect(entries[2]!.payload).toMatchObject({ ok: false, stopped: true });
    expect(String(entries[2]!.payload.content)).toMatch(/killed because the builder stopped the run/);

    const next = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "go on" }, model });
    expect((await waitForRunToFinish(stack.database, next)).type).toBe("complete");
    const [reply] = await db
      .select()
      .from(messages)
      .where(eq(messages.runId, next.id))
      .orderBy(asc(messages.createdAt))
      .offset(1);
    // The stand-in picks its answer by the assistant turns it is sent: turn 2 means it was sent the killed action, then the stop notice.
    expect(reply!.content).toBe("Picking up after the stop.");
    const { renderConversation } = await import("../../inngest/agent/conversation");
    const { projectEntries } = await import("../../inngest/agent/entries");
    const turns = renderConversation(await projectEntries(db, project.id));
    expect(turns.map((t) => t.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(turns[2]!.content).toMatch(
      /killed because the builder stopped the run[\s\S]*builder stopped that run[\s\S]*go on/,
    );
  });

  it("stops a running run on a bare agent/stop event through cancelOn (cancel via event)", async () => {
    const { db } = stack.database;
    const { inngest, agentStop } = await import("../../inngest/client");
    const { user, project } = await createBuilder(db);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "stop me" },
      model: scripted(replay, longSession(40)),
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "thinking" && row.data.iteration === 2,
    });

    // Straight to the engine, as an operator or another service would: nothing recorded in the app first.
    await inngest.send(agentStop.create({ runId: run.id, projectId: project.id }));
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("stopped");
    expect((await engineRunsForPrompt(stack.engine.url, run.id)).map((r) => r.status)).toEqual(["Cancelled"]);
    const [stopped] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(stopped!.status).toBe("stopped");
    expect(stopped!.iteration).toBeLessThan(40);
    expect(stopped!.error).toBeNull();
  });

  it("stops a run still queued behind another one before any of its steps run", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [...longSession(4), turn.reply("first done")]);
    const first = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "first" }, model });
    // Once the first holds the project's one slot, the second must queue behind it.
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: first.id,
      until: (row) => row.type === "thinking",
    });
    const second = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "second" },
      model,
    });

    expect(await app.stopRun(db, { userId: user.id, runId: second.id })).toEqual({
      stopping: true,
      status: "stopping",
    });
    expect((await waitForRunToFinish(stack.database, second)).type).toBe("stopped");
    expect((await eventsOf(second.id)).map((r) => r.type)).toEqual(["queued", "stopping", "stopped"]);
    expect((await waitForRunToFinish(stack.database, first)).type).toBe("complete");
  });

  it("says so when asked to stop a run that already finished, and changes nothing", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "short" },
      model: scripted(replay, [turn.reply("hi")]),
    });
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");
    expect(await app.stopRun(db, { userId: user.id, runId: run.id })).toEqual({ stopping: false, status: "complete" });
    expect((await eventsOf(run.id)).map((r) => r.type)).not.toContain("stopping");
  });

  it("refuses to stop someone else's run, which goes on", async () => {
    const { db } = stack.database;
    const owner = await createBuilder(db);
    const stranger = await createBuilder(db);
    const run = await app.startRun(db, {
      userId: owner.user.id,
      projectId: owner.project.id,
      input: { prompt: "mine" },
      model: scripted(replay, [...longSession(2), turn.reply("mine, done")]),
    });
    await expect(app.stopRun(db, { userId: stranger.user.id, runId: run.id })).rejects.toThrow(/not found/i);
    await expect(app.stopRun(db, { userId: stranger.user.id, runId: "not-a-uuid" })).rejects.toThrow(/not found/i);
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");
  });
});
