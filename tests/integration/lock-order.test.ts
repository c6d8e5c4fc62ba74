/**
 * One lock order for every writer of a project: the project's event lock
 * (db/run-events.ts) before any row. Two writers that take them the other way
 * round deadlock (Postgres 40P01, a 500 for the builder: the title step once
 * locked the run's row, then waited for the event lock a Stop held while the
 * Stop waited for that row). Each writer here is started while another
 * transaction holds the event lock; once it waits for that lock, it must not
 * have written or locked a row yet.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq, sql, type SQL } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnv } from "../../app/env.server";
import { recordPrompt } from "../../app/models/runs.server";
import { withdrawSteer } from "../../app/models/steering.server";
import { lockProjectEvents } from "../../db/run-events";
import { projects, runs, steerMessages } from "../../db/schema";
import { createAgentContext, type AgentContext } from "../../inngest/agent/context";
import { deliverSteering } from "../../inngest/agent/steering";
import { nameProject, startAgentRun } from "../../inngest/agent/steps";
import { startReplayServer } from "../../model-replay/server";
import { closeEgressProxies } from "../../sandbox";
import { createTestDatabase, defaultDriver, type TestDatabase } from "../support/database";
import { createBuilder } from "../support/fixtures";

let t: TestDatabase;
let replay: Awaited<ReturnType<typeof startReplayServer>>;
let agent: AgentContext;
let dataDir: string;

/** Rows of a raw query (on Postgres, the driver these tests run on, execute returns them as an array). */
async function queryRows<T>(query: SQL): Promise<T[]> {
  return (await t.database.db.execute(query)) as unknown as T[];
}

/** Locks other than reading a table: a row written (RowExclusiveLock) or locked for update (RowShareLock). */
async function rowLocksOf(pid: number): Promise<string[]> {
  const rows = await queryRows<{ lock: string }>(sql`
    select relation::regclass::text || ' ' || mode as lock from pg_locks
    where pid = ${pid} and locktype = 'relation' and mode in ('RowExclusiveLock', 'RowShareLock')
    order by 1`);
  return rows.map((row) => row.lock);
}

/** The backend waiting for an advisory lock, once there is one. */
async function waiterOnEventLock(): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const [row] = await queryRows<{ pid: number }>(sql`
      select pid from pg_locks where locktype = 'advisory' and not granted
        and database = (select oid from pg_database where datname = current_database())`);
    if (row) return row.pid;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("no writer came to wait for the project's event lock");
}

/**
 * Runs `write` while another transaction holds the project's event lock, and
 * returns the row locks the writer held while it waited; then lets it finish.
 */
async function locksHeldWhileWaiting(projectId: string, write: () => Promise<unknown>): Promise<string[]> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const holding = new Promise<void>((resolve) => (locked = resolve));
  const holder = t.database.db.transaction(async (tx) => {
    await lockProjectEvents(tx, projectId);
    locked();
    await released;
  });
  await holding;
  const writing = write();
  try {
    return await rowLocksOf(await waiterOnEventLock());
  } finally {
    release();
    await holder;
    await writing;
  }
}

describe.skipIf(defaultDriver() !== "postgres")("every writer takes the project's event lock before a row", () => {
  beforeAll(async () => {
    t = await createTestDatabase("postgres");
    replay = await startReplayServer({
      scripts: [{ name: "titled", title: "Lock order", turns: [{ reply: { tool: "reply_to_user", message: "ok" } }] }],
      port: 0,
    });
    dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-lock-order-"));
    agent = createAgentContext(
      parseEnv({ DYNO_DATA_DIR: dataDir, AGENT_BASE_URL: replay.url, BAML_LOG: "error" }),
      t.database,
    );
  });

  afterAll(async () => {
    await closeEgressProxies();
    await replay?.close();
    await t?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  async function runningRun() {
    const { db } = t.database;
    const { user, project } = await createBuilder(db, { title: "Untitled project" });
    const [row] = await db
      .insert(runs)
      .values({
        userId: user.id,
        projectId: project.id,
        prompt: "make a page",
        model: "openai-compatible/titled",
        maxIterations: 5,
      })
      .returning();
    return { user, project, run: await startAgentRun(agent, row!.id) };
  }

  it("the title step", async () => {
    const { project, run } = await runningRun();
    expect(await locksHeldWhileWaiting(project.id, () => nameProject(agent, run))).toEqual([]);
    const [named] = await t.database.db.select().from(projects).where(eq(projects.id, project.id));
    expect(named?.title).toBe("Lock order");
  });

  it("recording a prompt, also when it must find the project idle", async () => {
    const { db } = t.database;
    for (const onlyWhenIdle of [false, true]) {
      const { user, project } = await createBuilder(db);
      const record = () =>
        recordPrompt(db, {
          userId: user.id,
          projectId: project.id,
          input: { prompt: "hello", mode: "build" },
          model: "replay/titled",
          onlyWhenIdle,
        });
      expect(await locksHeldWhileWaiting(project.id, record)).toEqual([]);
      expect(await db.select().from(runs).where(eq(runs.projectId, project.id))).toHaveLength(1);
    }
  });

  it("delivering and withdrawing steering messages", async () => {
    const { db } = t.database;
    const first = await runningRun();
    await db.insert(steerMessages).values({ runId: first.run.id, projectId: first.project.id, content: "blue" });
    expect(await locksHeldWhileWaiting(first.project.id, () => deliverSteering(db, first.run, 1))).toEqual([]);
    const [delivered] = await db.select().from(steerMessages).where(eq(steerMessages.runId, first.run.id));
    expect(delivered?.state).toBe("delivered");

    const second = await runningRun();
    const [queued] = await db
      .insert(steerMessages)
      .values({ runId: second.run.id, projectId: second.project.id, content: "red" })
      .returning();
    const withdraw = () => withdrawSteer(db, { projectId: second.project.id, steerId: queued!.id });
    expect(await locksHeldWhileWaiting(second.project.id, withdraw)).toEqual([]);
    const [withdrawn] = await db.select().from(steerMessages).where(eq(steerMessages.id, queued!.id));
    expect(withdrawn?.state).toBe("withdrawn");
  });
});
