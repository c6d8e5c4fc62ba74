/**
 * Runs the engine lost do not stay active forever: Stop asks the engine
 * whether it still has the run and ends one it lost, and a run the engine
 * still has (running, or queued behind another) or cannot answer about (the
 * engine is down) is left alone. Two stops at once record one `stopping`.
 * The periodic check is off here (RUN_RECONCILE_INTERVAL=0s), so only the
 * calls made by each test act; run-reconcile-periodic.test.ts covers the timer.
 */
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runEvents, runs } from "../../db/schema";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

let stack: Stack;
let app: typeof import("../../app/models/runs.server");
let reconcile: typeof import("../../inngest/reconcile");

beforeAll(async () => {
  stack = await startStack({ env: { RUN_RECONCILE_INTERVAL: "0s", RUN_RECONCILE_GRACE: "1s" } });
  app = await import("../../app/models/runs.server");
  reconcile = await import("../../inngest/reconcile");
});

afterAll(async () => {
  await stack?.stop();
});

const statusOf = async (runId: string) =>
  (await stack.database.db.select({ status: runs.status }).from(runs).where(eq(runs.id, runId)))[0]?.status;
const stoppingRows = async (runId: string) =>
  (
    await stack.database.db
      .select()
      .from(runEvents)
      .where(and(eq(runEvents.runId, runId), eq(runEvents.type, "stopping")))
  ).length;
/** Past RUN_RECONCILE_GRACE, so the check may judge the runs made so far. */
const pastGrace = () => new Promise((resolve) => setTimeout(resolve, 1_200));

describe("reconciling runs with the engine", () => {
  it("records one stopping row when two stops are sent at once", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(stack.replay, [turn.run("sleep 30"), turn.reply("never")]);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "stop twice" },
      model,
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call",
    });

    const answers = await Promise.all([
      app.stopRun(db, { userId: user.id, runId: run.id }),
      app.stopRun(db, { userId: user.id, runId: run.id }),
    ]);
    expect(answers.every((a) => a.stopping)).toBe(true);
    expect((await waitForRunToFinish(stack.database, run, 15_000)).type).toBe("stopped");
    expect(await stoppingRows(run.id)).toBe(1);
  });

  it("leaves a running run and one queued behind it alone", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(stack.replay, [turn.run("sleep 3"), turn.reply("first done"), turn.reply("second done")]);
    const first = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "first" }, model });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: first.id,
      until: (row) => row.type === "tool_call",
    });
    const second = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "second" },
      model,
    });
    await pastGrace();

    const result = await reconcile.reconcileRuns(db, { runIds: [first.id, second.id] });
    expect(result).toEqual({ ended: [], checked: 2, resuming: [] });
    expect([await statusOf(first.id), await statusOf(second.id)]).toEqual(["running", "queued"]);
    expect((await waitForRunToFinish(stack.database, first, 30_000)).type).toBe("complete");
    expect((await waitForRunToFinish(stack.database, second, 30_000)).type).toBe("complete");
  });

  it("changes nothing while the engine is down, then a stop ends the run the restarted engine lost", async () => {
    const { db } = stack.database;
    const { EngineApiError } = await import("../../inngest/engine-api");
    const { user, project } = await createBuilder(db);
    const model = scripted(stack.replay, [turn.run("sleep 30"), turn.reply("after the restart")]);
    const run = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "lose me" }, model });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call",
    });
    await pastGrace();

    // The engine cannot answer: not a verdict. The run stays as it is, and a stop only records `stopping`.
    await stack.stopEngine();
    await expect(reconcile.reconcileRuns(db)).rejects.toBeInstanceOf(EngineApiError);
    expect(await statusOf(run.id)).toBe("running");
    await expect(app.stopRun(db, { userId: user.id, runId: run.id })).rejects.toBeInstanceOf(
      app.EngineUnavailableError,
    );
    expect(await statusOf(run.id)).toBe("stopping");

    // The engine is back with empty state: it has never heard of the run. Stop again ends it, failed, with why.
    await stack.restartEngine();
    expect(await app.stopRun(db, { userId: user.id, runId: run.id })).toEqual({ stopping: false, status: "failed" });
    const [ended] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(ended).toMatchObject({ status: "failed", error: reconcile.LOST_RUN_REASONS.unknown });
    expect(await stoppingRows(run.id)).toBe(1);

    // The project takes a prompt again (it refused with 409 while the lost run was active).
    const next = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "again" },
      model,
      onlyWhenIdle: true,
    });
    expect((await waitForRunToFinish(stack.database, next, 30_000)).type).toBe("complete");
  });
});
