/**
 * Stop mid-run through the real engine: `agent/stop` is matched by cancelOn,
 * the run ends `stopped`, and no iteration starts after the stop is recorded.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messages, runEvents, runs } from "../../db/schema";
import { engineRunsForPrompt } from "../support/engine-api";
import { createBuilder } from "../support/fixtures";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

let stack: Stack;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_PLACEHOLDER_STEP_MS: "150" } });
  app = await import("../../app/models/runs.server");
  console.log(`[cancel] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

describe("stopping a run", () => {
  it("cancels it between steps, records the stop, and starts no step after it", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "a long build", mode: "build", maxIterations: 40 },
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "iteration" && row.data.iteration === 3,
    });

    const result = await app.stopRun(db, { userId: user.id, runId: run.id });
    expect(result).toEqual({ stopping: true, status: "stopping" });

    const last = await waitForRunToFinish(stack.database, run);
    expect(last.type).toBe("stopped");

    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
    const stop = rows.find((r) => r.type === "stopping");
    expect(stop).toBeDefined();
    const after = rows.filter((r) => r.id > stop!.id);
    expect(after.map((r) => r.type)).toEqual(["stopped"]);
    const iterations = rows.filter((r) => r.type === "iteration").length;
    expect(iterations).toBeGreaterThanOrEqual(3);
    expect(iterations).toBeLessThan(40);

    const [stopped] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(stopped).toMatchObject({ status: "stopped", iteration: iterations });
    const notices = await db.select().from(messages).where(eq(messages.runId, run.id));
    expect(notices.map((m) => m.role).sort()).toEqual(["system", "user"]);

    // Either the engine's cancelOn ended the function ("Cancelled") or the
    // next iteration saw the recorded stop first and ended it ("Completed");
    // both leave the same record. The bare-event test below pins cancelOn.
    const engineRuns = await engineRunsForPrompt(stack.engine.url, run.id);
    expect(engineRuns).toHaveLength(1);
  });

  it("stops a running run on a bare agent/stop event through cancelOn (cancel via event)", async () => {
    const { db } = stack.database;
    const { inngest, agentStop } = await import("../../inngest/client");
    const { user, project } = await createBuilder(db);
    const run = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "stop me", maxIterations: 40 } });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "iteration" && row.data.iteration === 2,
    });

    // Straight to the engine, as an operator or another service would: nothing recorded in the app first.
    await inngest.send(agentStop.create({ runId: run.id, projectId: project.id }));
    const last = await waitForRunToFinish(stack.database, run);
    expect(last.type).toBe("stopped");
    expect((await engineRunsForPrompt(stack.engine.url, run.id)).map((r) => r.status)).toEqual(["Cancelled"]);
    const [stopped] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(stopped!.status).toBe("stopped");
    expect(stopped!.iteration).toBeLessThan(40);
    expect(stopped!.error).toBeNull();
  });

  it("stops a run still queued behind another one before any of its steps run", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const first = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "first", maxIterations: 8 } });
    // Once the first holds the project's one slot, the second must queue behind it.
    await waitForRunEvent(stack.database, { projectId: project.id, runId: first.id, until: (row) => row.type === "iteration" });
    const second = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "second", maxIterations: 8 } });

    expect(await app.stopRun(db, { userId: user.id, runId: second.id })).toEqual({ stopping: true, status: "stopping" });
    const last = await waitForRunToFinish(stack.database, second);
    expect(last.type).toBe("stopped");
    const types = (await db.select().from(runEvents).where(eq(runEvents.runId, second.id)).orderBy(asc(runEvents.id))).map((r) => r.type);
    expect(types).toEqual(["queued", "stopping", "stopped"]);

    const firstLast = await waitForRunToFinish(stack.database, first);
    expect(firstLast.type).toBe("complete");
  });

  it("says so when asked to stop a run that already finished, and changes nothing", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const run = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "short", maxIterations: 1 } });
    await waitForRunEvent(stack.database, { projectId: project.id, runId: run.id, until: (row) => row.type === "complete" });

    expect(await app.stopRun(db, { userId: user.id, runId: run.id })).toEqual({ stopping: false, status: "complete" });
    const types = (await db.select().from(runEvents).where(eq(runEvents.runId, run.id))).map((r) => r.type);
    expect(types).not.toContain("stopping");
  });

  it("refuses to stop someone else's run", async () => {
    const { db } = stack.database;
    const owner = await createBuilder(db);
    const stranger = await createBuilder(db);
    const run = await app.startRun(db, { userId: owner.user.id, projectId: owner.project.id, input: { prompt: "mine", maxIterations: 2 } });
    await expect(app.stopRun(db, { userId: stranger.user.id, runId: run.id })).rejects.toThrow(/not found/i);
    const last = await waitForRunToFinish(stack.database, run);
    expect(last.type).toBe("complete");
  });
});
