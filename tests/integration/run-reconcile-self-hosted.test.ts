/**
 * A self-hosted engine (`inngest start --sqlite-dir`, queue in memory)
 * restarted mid-run keeps the run's history, "Running", but nothing queued to
 * run it: it never runs again, and its cancel never lands. Stop asks the
 * engine, sees nothing queued on two looks, and ends the run as failed with
 * the reason; the project then takes the next prompt.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import type { Database } from "../../db/client";
import { runs } from "../../db/schema";
import { startEngineServer, type EnginePorts, type EngineServer } from "../../scripts/lib/engine-process";
import type { AppServer } from "../../server/app";
import { reserveTestDatabase, type ReservedDatabase } from "../support/database";
import { createBuilder } from "../support/fixtures";
import { scripted, startTestModel, turn, type ReplayServer } from "../support/model";
import { freeEnginePorts } from "../support/ports";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

const signingKey = randomBytes(32).toString("hex");
const eventKey = randomBytes(16).toString("hex");
let ports: EnginePorts;
let reserved: ReservedDatabase;
let replay: ReplayServer;
let app: AppServer;
let database: Database;
let engine: EngineServer | undefined;
let dataDir: string;
let sqliteDir: string;

/** `inngest start` with a sqlite folder (history on disk, queue in memory), serving the app. */
function startSelfHostedEngine(): Promise<EngineServer> {
  return startEngineServer({
    bin: inject("engineBin"),
    eventKey,
    signingKey,
    appUrls: [`${app.url}/api/inngest`],
    sqliteDir,
    ports,
    waitForFunctions: ["dyno-coding-agent"],
  });
}

async function stopEngine() {
  await engine?.stop();
}

beforeAll(async () => {
  const model = await startTestModel();
  replay = model.replay;
  reserved = await reserveTestDatabase();
  ports = await freeEnginePorts();
  dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-data-"));
  sqliteDir = mkdtempSync(path.join(os.tmpdir(), "dyno-engine-sqlite-"));
  delete process.env.INNGEST_DEV;
  Object.assign(process.env, reserved.env, model.env, {
    DYNO_DATA_DIR: reserved.env.DYNO_DATA_DIR ?? dataDir,
    RUN_RECONCILE_INTERVAL: "0s",
    RUN_RECONCILE_GRACE: "1s",
    INNGEST_BASE_URL: `http://127.0.0.1:${ports.api}`,
    INNGEST_SIGNING_KEY: signingKey,
    INNGEST_EVENT_KEY: eventKey,
  });
  const { startAppServer } = await import("../../server/app");
  app = await startAppServer({ mode: "development", port: 0, watch: false });
  database = (await import("../../db")).getDatabase();
  engine = await startSelfHostedEngine();
});

afterAll(async () => {
  await stopEngine();
  await app?.close();
  await reserved?.release();
  await replay?.close();
  for (const dir of [dataDir, sqliteDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

it("ends, on Stop, a run that a restarted self-hosted engine still lists but will never run", async () => {
  const { db } = database;
  const runsApi = await import("../../app/models/runs.server");
  const { LOST_RUN_REASONS } = await import("../../inngest/reconcile");
  const { user, project } = await createBuilder(db);
  const model = scripted(replay, [turn.run("sleep 15"), turn.reply("done on the restarted engine")]);
  const run = await runsApi.startRun(db, {
    userId: user.id,
    projectId: project.id,
    input: { prompt: "lose my queue" },
    model,
  });
  await waitForRunEvent(database, { projectId: project.id, runId: run.id, until: (row) => row.type === "tool_call" });

  await stopEngine();
  engine = await startSelfHostedEngine();

  expect(await runsApi.stopRun(db, { userId: user.id, runId: run.id })).toEqual({ stopping: false, status: "failed" });
  const [ended] = await db.select().from(runs).where(eq(runs.id, run.id));
  expect(ended).toMatchObject({ status: "failed", error: LOST_RUN_REASONS.orphaned });

  const next = await runsApi.startRun(db, {
    userId: user.id,
    projectId: project.id,
    input: { prompt: "again" },
    model,
    onlyWhenIdle: true,
  });
  expect((await waitForRunToFinish(database, next, 60_000)).type).toBe("complete");
});
