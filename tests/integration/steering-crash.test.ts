/**
 * Steering across a crash of the app (decision 033): the app process is
 * killed (SIGKILL) while the think step that delivered a builder's message
 * waits for the model. The engine re-runs that think after the restart; it
 * finds the message delivered at its iteration and asks the model the same
 * question, so the message reaches the agent exactly once and is not lost.
 *
 * The app runs in a child process here, so this needs a Postgres server
 * (DATABASE_URL): embedded PGlite allows one process per folder.
 */
import { randomUUID } from "node:crypto";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { agentEntries, runEvents, steerMessages } from "../../db/schema";
import { startAppProcessStack, type AppProcessStack } from "../support/app-process-stack";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

const hasPostgres = Boolean(process.env.DATABASE_URL);

describe.skipIf(!hasPostgres)("steering across a crash (needs DATABASE_URL)", () => {
  let stack: AppProcessStack;
  let database: Database;
  let replay: ReplayServer;

  beforeAll(async () => {
    // This process sends prompts and steering messages as the app would (same database, same engine).
    stack = await startAppProcessStack("dyno-steer-crash-");
    ({ database, replay } = stack);
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it("delivers a message exactly once when the app is killed in the think step that delivered it", async () => {
    const { db } = database;
    const { startRun } = await import("../../app/models/runs.server");
    const { queueSteer } = await import("../../app/models/steering.server");
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.run("sleep 3"),
      // The answer to step 2 comes late: the app is killed while the model is asked.
      turn.write("a.txt", "blue", { delayMs: 5_000 }),
      turn.reply("Done, in blue."),
    ]);
    const run = await startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "build" }, model });
    await waitForRunEvent(database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 1,
      timeoutMs: 60_000,
    });
    const marker = `make it blue ${randomUUID()}`;
    expect(await queueSteer(db, { userId: user.id, projectId: project.id, prompt: marker })).toMatchObject({
      runId: run.id,
    });

    // Think-2 delivered it and waits for the model: kill the app outright.
    await waitForRunEvent(database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "steer_delivered",
      timeoutMs: 60_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const requestsBeforeKill = replay.recentPrompts.filter((p) => p.includes(marker));
    expect(requestsBeforeKill).toHaveLength(1);
    await stack.restartApp({ signal: "SIGKILL" });
    expect((await waitForRunToFinish(database, run, 180_000)).type).toBe("complete");

    // One delivery: one entry, one event written once, the message delivered at step 2.
    const entries = await db
      .select()
      .from(agentEntries)
      .where(eq(agentEntries.runId, run.id))
      .orderBy(asc(agentEntries.id));
    expect(entries.filter((e) => e.kind === "steer").map((e) => e.iteration)).toEqual([2]);
    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(events.filter((e) => e.type === "steer_delivered").map((e) => [e.data.iteration, e.writes])).toEqual([
      [2, 1],
    ]);
    // The think did run again after the restart (it says it resumed).
    expect(events.some((e) => e.type === "resuming")).toBe(true);
    const [steer] = await db.select().from(steerMessages).where(eq(steerMessages.runId, run.id));
    expect(steer).toMatchObject({ state: "delivered", deliveredIteration: 2 });

    // Step 2 asked twice (before and after the crash), with the same prompt; step 3 once; each carries it once.
    const carrying = replay.recentPrompts.filter((p) => p.includes(marker));
    expect(carrying).toHaveLength(3);
    expect(carrying[1]).toBe(carrying[0]);
    expect(carrying.map((p) => p.split(marker).length - 1)).toEqual([1, 1, 1]);
  });
});
