/**
 * The verdicts the reconciler acts on, against a real database. The engine's
 * side is a stand-in that answers what the real engine answers in those cases
 * (tests/integration/run-reconcile*.test.ts ask the real one): a run it gave
 * up on or cancelled is "ended" at a time, one it still has is "active".
 */
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../db/client";
import { runEvents, runs } from "../db/schema";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import type { EngineApi, EngineRunState } from "./engine-api";
import { LOST_RUN_REASONS, reconcileRuns } from "./reconcile";
import { markRunStarted, markRunStopping } from "./run-lifecycle";

const MINUTE = 60_000;

/** An engine that says `state` about every run it is asked about. */
const engineSaying = (state: EngineRunState): EngineApi => ({
  runStates: async (runIds) => new Map(runIds.map((id) => [id, state])),
});

describe.each(availableDrivers())("reconcileRuns on %s", (driver) => {
  let t: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
    db = t.database.db;
  });
  afterAll(async () => {
    await t?.drop();
  });

  /** A run created and started `agoMs` ago, in `status`. */
  async function runFrom(agoMs: number, status: "queued" | "running" | "stopping" = "running") {
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    if (status !== "queued") await markRunStarted(db, run.id);
    if (status === "stopping") await markRunStopping(db, run);
    const at = new Date(Date.now() - agoMs);
    await db
      .update(runs)
      .set({ createdAt: at, startedAt: status === "queued" ? null : at })
      .where(eq(runs.id, run.id));
    return run;
  }
  const row = async (runId: string) => (await db.select().from(runs).where(eq(runs.id, runId)))[0]!;
  const options = { graceMs: MINUTE, timeout: "2h" };

  it("fails a run the engine gave up on once that end is past the grace period, and not before", async () => {
    const run = await runFrom(10 * MINUTE);
    const justNow = engineSaying({ kind: "ended", status: "Failed", endedAt: new Date(Date.now() - 1_000) });
    expect((await reconcileRuns(db, { ...options, engine: justNow, runIds: [run.id] })).ended).toEqual([]);
    expect((await row(run.id)).status).toBe("running");

    const earlier = engineSaying({ kind: "ended", status: "Failed", endedAt: new Date(Date.now() - 2 * MINUTE) });
    const result = await reconcileRuns(db, { ...options, engine: earlier, runIds: [run.id] });
    expect(result.ended).toEqual([{ runId: run.id, as: "failed", why: "failed" }]);
    expect(await row(run.id)).toMatchObject({ status: "failed", error: LOST_RUN_REASONS.failed });
  });

  it("fails a run the engine still lists but has nothing queued for (it lost its queue)", async () => {
    const run = await runFrom(10 * MINUTE, "stopping");
    const result = await reconcileRuns(db, {
      ...options,
      engine: engineSaying({ kind: "orphaned" }),
      runIds: [run.id],
    });
    expect(result.ended).toEqual([{ runId: run.id, as: "failed", why: "orphaned" }]);
    expect(await row(run.id)).toMatchObject({ status: "failed", error: LOST_RUN_REASONS.orphaned });
  });

  it("ends a run the engine cancelled as its cancel handler would: stopped when a stop was asked", async () => {
    const run = await runFrom(10 * MINUTE, "stopping");
    const cancelled = engineSaying({ kind: "ended", status: "Cancelled", endedAt: new Date(Date.now() - 2 * MINUTE) });
    const result = await reconcileRuns(db, { ...options, engine: cancelled, runIds: [run.id] });
    expect(result.ended).toEqual([{ runId: run.id, as: "stopped", why: "cancelled" }]);
    expect(await row(run.id)).toMatchObject({ status: "stopped", error: null });
  });

  it("fails a run the engine still lists once it is past its time limit and the grace period", async () => {
    const young = await runFrom(10 * MINUTE);
    const old = await runFrom(2 * 60 * MINUTE + 2 * MINUTE);
    const result = await reconcileRuns(db, {
      ...options,
      engine: engineSaying({ kind: "active" }),
      runIds: [young.id, old.id],
    });
    expect(result.ended).toEqual([{ runId: old.id, as: "failed", why: "overdue" }]);
    expect((await row(young.id)).status).toBe("running");
    expect(await row(old.id)).toMatchObject({ status: "failed", error: LOST_RUN_REASONS.overdue("2h") });
  });

  it("does not judge a run younger than the grace period (it may not have reached the engine yet)", async () => {
    const run = await runFrom(5_000, "queued");
    const result = await reconcileRuns(db, { ...options, engine: engineSaying({ kind: "unknown" }), runIds: [run.id] });
    expect(result).toEqual({ ended: [], checked: 0, resuming: [] });
    expect((await row(run.id)).status).toBe("queued");
  });

  it("says a run is resuming when the engine has a retry queued for it, young or old, once per attempt", async () => {
    const young = await runFrom(5_000);
    const retrying = engineSaying({ kind: "active", retry: { attempt: 2, at: new Date(Date.now() + 20_000) } });
    for (let pass = 0; pass < 2; pass++) {
      const result = await reconcileRuns(db, { ...options, engine: retrying, runIds: [young.id] });
      expect(result).toEqual({ ended: [], checked: 0, resuming: [young.id] });
    }
    const rows = await db
      .select()
      .from(runEvents)
      .where(and(eq(runEvents.runId, young.id), eq(runEvents.type, "resuming")));
    expect(rows.map((r) => r.data)).toEqual([{ attempt: 2 }]);
    expect((await row(young.id)).status).toBe("running");
  });

  it("leaves finished runs alone, whatever the engine says", async () => {
    const run = await runFrom(10 * MINUTE);
    const { failRun } = await import("./run-lifecycle");
    await failRun(db, run.id, "the model refused");
    const result = await reconcileRuns(db, { ...options, engine: engineSaying({ kind: "unknown" }), runIds: [run.id] });
    expect(result.checked).toBe(0);
    expect((await row(run.id)).error).toBe("the model refused");
  });
});
