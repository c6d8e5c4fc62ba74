import { asc, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import { appendRunEvent, RUN_EVENTS_CHANNEL, runEventsBus, subscribeRunEvents } from "./run-events";
import { agentEntries, runEvents, runs, users, type RunEvent } from "./schema";

/** Collects `count` rows from a subscription, failing after `timeoutMs`. */
async function collect(iterable: AsyncIterable<RunEvent>, count: number, timeoutMs = 10_000): Promise<RunEvent[]> {
  const rows: RunEvent[] = [];
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`got ${rows.length} of ${count} rows`)), timeoutMs),
  );
  const reading = (async () => {
    for await (const row of iterable) {
      rows.push(row);
      if (rows.length === count) break;
    }
    return rows;
  })();
  return Promise.race([reading, timeout]);
}

describe.each(availableDrivers())("run events on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it("applies the migrations to a fresh database", async () => {
    const result = await t.database.db.execute<{ table_name: string }>(
      sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
    );
    const rows = Array.isArray(result) ? result : (result as { rows: { table_name: string }[] }).rows;
    expect(rows.map((r) => r.table_name)).toEqual([
      "agent_entries",
      "git_remotes",
      "messages",
      "model_keys",
      "projects",
      "prompt_images",
      "rate_limits",
      "run_events",
      "runs",
      "sessions",
      "steer_messages",
      "users",
      "versions",
      "webhook_deliveries",
      "webhooks",
    ]);
  });

  it("rejects an email that is not lower-cased", async () => {
    await expect(
      t.database.db.insert(users).values({ email: "Someone@Example.test", passwordHash: "x" }),
    ).rejects.toThrow();
  });

  it("appends a row and applies the run snapshot in one write", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });

    const row = await appendRunEvent(
      db,
      { runId: run.id, projectId: project.id, type: "starting", data: { mode: "build" } },
      { status: "running", iteration: 0 },
    );
    expect(row).toMatchObject({
      runId: run.id,
      projectId: project.id,
      type: "starting",
      data: { mode: "build" },
      writes: 1,
    });
    const [after] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(after?.status).toBe("running");
  });

  it("turns a repeated write with the same dedupe key into an update, counting writes", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });

    const first = await appendRunEvent(db, {
      runId: run.id,
      projectId: project.id,
      type: "iteration",
      dedupeKey: "iteration-1",
      data: { n: 1 },
    });
    const second = await appendRunEvent(db, {
      runId: run.id,
      projectId: project.id,
      type: "iteration",
      dedupeKey: "iteration-1",
      data: { n: 2 },
    });
    expect(second?.id).toBe(first?.id);
    expect(second).toMatchObject({ writes: 2, data: { n: 2 } });
    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(rows).toHaveLength(1);
  });

  it("notifies with the snapshot's update, in one round trip", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const heard: string[] = [];
    const unlisten = await t.database.listen(RUN_EVENTS_CHANNEL, (payload) => heard.push(payload));
    try {
      await db.transaction(async (tx) => {
        const execute = vi.spyOn(tx, "execute");
        const row = await appendRunEvent(
          tx,
          { runId: run.id, projectId: project.id, type: "tool_call" },
          { currentTool: "read_file" },
        );
        // Only the lock: the NOTIFY rode on the update.
        expect(execute).toHaveBeenCalledTimes(1);
        expect(row).not.toBeNull();
      });
      await expect.poll(() => heard.map((p) => (JSON.parse(p) as { runId: string }).runId)).toEqual([run.id]);
    } finally {
      await unlisten();
    }
    const [after] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(after?.currentTool).toBe("read_file");
  });

  it("notifies an event without a snapshot from its insert, the payload naming the row as an update's would", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const heard: unknown[] = [];
    const unlisten = await t.database.listen(RUN_EVENTS_CHANNEL, (payload) => heard.push(JSON.parse(payload)));
    try {
      const [one, two] = await db.transaction(async (tx) => [
        await appendRunEvent(tx, { runId: run.id, projectId: project.id, type: "version", dedupeKey: "v-1" }),
        await appendRunEvent(tx, { runId: run.id, projectId: project.id, type: "files_changed" }),
      ]);
      // The row as its columns hold it (no column of the NOTIFY's), and one notification per row, after commit.
      expect(Object.keys(one!).sort()).toEqual(Object.keys(two!).sort());
      expect(one).not.toHaveProperty("notified");
      await expect
        .poll(() => heard)
        .toEqual([
          { projectId: project.id, runId: run.id, id: one!.id, type: "version" },
          { projectId: project.id, runId: run.id, id: two!.id, type: "files_changed" },
        ]);
      // A rewrite by a retried step (the same dedupe key) notifies again.
      await appendRunEvent(db, { runId: run.id, projectId: project.id, type: "version", dedupeKey: "v-1" });
      await expect.poll(() => heard.length).toBe(3);
      expect(heard[2]).toEqual({ projectId: project.id, runId: run.id, id: one!.id, type: "version" });
    } finally {
      await unlisten();
    }
  });

  it("writes inside a caller's transaction without a savepoint, asking for the project's lock once", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    await db.transaction(async (tx) => {
      const nested = vi.spyOn(tx, "transaction");
      const execute = vi.spyOn(tx, "execute");
      await appendRunEvent(tx, { runId: run.id, projectId: project.id, type: "one" });
      await appendRunEvent(tx, { runId: run.id, projectId: project.id, type: "two" });
      expect(nested).not.toHaveBeenCalled();
      // The lock once; each row's NOTIFY rides on its insert.
      expect(execute).toHaveBeenCalledTimes(1);
    });
    // A caller's rollback takes its events with it.
    await expect(
      db.transaction(async (tx) => {
        await appendRunEvent(tx, { runId: run.id, projectId: project.id, type: "rolled-back" });
        throw new Error("the step failed");
      }),
    ).rejects.toThrow("the step failed");
    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
    expect(rows.map((r) => r.type)).toEqual(["one", "two"]);
  });

  it.runIf(driver === "postgres")(
    "lets a status change pass a step that saved a row of the run before its first event (no deadlock)",
    async () => {
      // A step saves its entry (the foreign key takes a key-share lock on the run's row), then writes its event
      // (the project's lock); a Stop between the two holds the project's lock and checks the run's status. Found
      // by the fresh-clone CI as Postgres 40P01 when a Stop met a step at the wrong moment.
      const { db } = t.database;
      const { user, project } = await createBuilder(db);
      const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
      let stop: Promise<RunEvent | null> | undefined;
      const step = db.transaction(async (tx) => {
        await tx
          .insert(agentEntries)
          .values({ runId: run.id, projectId: project.id, iteration: 1, kind: "note", payload: {} });
        stop = appendRunEvent(db, { runId: run.id, projectId: project.id, type: "stopping" }, { status: "stopping" });
        // Long enough for the Stop to take the project's lock and reach the run's row.
        await new Promise((resolve) => setTimeout(resolve, 300));
        return appendRunEvent(tx, { runId: run.id, projectId: project.id, type: "tool_result" });
      });
      const [stepped, stopped] = await Promise.all([step, step.then(() => stop)]);
      expect(stepped?.type).toBe("tool_result");
      expect(stopped?.type).toBe("stopping");
      const [after] = await db.select().from(runs).where(eq(runs.id, run.id));
      expect(after?.status).toBe("stopping");
    },
  );

  it("writes nothing for a status move the run may not make", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    await appendRunEvent(db, { runId: run.id, projectId: project.id, type: "complete" }, { status: "complete" });

    const late = await appendRunEvent(
      db,
      { runId: run.id, projectId: project.id, type: "stopping" },
      { status: "stopping" },
    );
    expect(late).toBeNull();
    const guarded = await appendRunEvent(db, {
      runId: run.id,
      projectId: project.id,
      type: "iteration",
      onlyIfStatus: ["running"],
    });
    expect(guarded).toBeNull();
    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(rows.map((r) => r.type)).toEqual(["complete"]);
    const [after] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(after?.status).toBe("complete");
  });

  it("yields the rows after a given id, then new rows as they commit, and stops on abort", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const before = [];
    for (const type of ["a", "b", "c"])
      before.push(await appendRunEvent(db, { runId: run.id, projectId: project.id, type }));

    const controller = new AbortController();
    const subscription = subscribeRunEvents(t.database, {
      projectId: project.id,
      afterId: before[0]!.id,
      signal: controller.signal,
    });
    const reading = collect(subscription, 4);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await appendRunEvent(db, { runId: run.id, projectId: project.id, type: "d" });
    await appendRunEvent(db, { runId: run.id, projectId: project.id, type: "e" });
    const rows = await reading;
    expect(rows.map((r) => r.type)).toEqual(["b", "c", "d", "e"]);
    controller.abort();
    // The reader's listener is gone once it ends.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runEventsBus(t.database).size).toBe(0);
  });

  it("only yields the project's rows, and only the run's when asked", async () => {
    const { db } = t.database;
    const mine = await createBuilder(db);
    const theirs = await createBuilder(db);
    const runA = await createQueuedRun(db, { userId: mine.user.id, projectId: mine.project.id });
    const runB = await createQueuedRun(db, { userId: mine.user.id, projectId: mine.project.id });
    const other = await createQueuedRun(db, { userId: theirs.user.id, projectId: theirs.project.id });
    await appendRunEvent(db, { runId: other.id, projectId: theirs.project.id, type: "theirs" });
    await appendRunEvent(db, { runId: runA.id, projectId: mine.project.id, type: "a1" });
    await appendRunEvent(db, { runId: runB.id, projectId: mine.project.id, type: "b1" });
    await appendRunEvent(db, { runId: runA.id, projectId: mine.project.id, type: "a2" });

    const controller = new AbortController();
    const project = await collect(
      subscribeRunEvents(t.database, { projectId: mine.project.id, signal: controller.signal }),
      3,
    );
    expect(project.map((r) => r.type)).toEqual(["a1", "b1", "a2"]);
    const run = await collect(
      subscribeRunEvents(t.database, { projectId: mine.project.id, runId: runA.id, signal: controller.signal }),
      2,
    );
    expect(run.map((r) => r.type)).toEqual(["a1", "a2"]);
    controller.abort();
  });

  it("never skips a row when many writers commit at once", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const writers = await Promise.all(
      Array.from({ length: 4 }, () => createQueuedRun(db, { userId: user.id, projectId: project.id })),
    );
    const total = 80;
    const controller = new AbortController();
    const reading = collect(
      subscribeRunEvents(t.database, { projectId: project.id, signal: controller.signal, batchSize: 7 }),
      total,
      15_000,
    );
    await Promise.all(
      writers.map(async (run, w) => {
        for (let i = 0; i < total / writers.length; i++) {
          await appendRunEvent(db, { runId: run.id, projectId: project.id, type: "tick", data: { w, i } });
        }
      }),
    );
    const seen = await reading;
    controller.abort();
    const ids = seen.map((r) => r.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(total);
    const stored = await db
      .select({ id: runEvents.id })
      .from(runEvents)
      .where(eq(runEvents.projectId, project.id))
      .orderBy(asc(runEvents.id));
    expect(ids).toEqual(stored.map((r) => r.id));
  });
});
