/**
 * A self-hosted engine (`inngest start --sqlite-dir`, queue in memory)
 * restarted mid-run keeps the run's history, "Running", but nothing queued to
 * run it: it never runs again, and its cancel never lands. Stop asks the
 * engine, sees nothing queued on two looks, and ends the run as failed with
 * the reason; the project then takes the next prompt.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import type { Database } from "../../db/client";
import { runs } from "../../db/schema";
import type { EnginePorts } from "../../scripts/lib/engine-process";
import { engineEnv } from "../../scripts/lib/inngest-engine";
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
let engine: ChildProcess | undefined;
let dataDir: string;
let sqliteDir: string;

/** `inngest start` with a sqlite folder (history on disk, queue in memory), serving the app. */
async function startSelfHostedEngine(): Promise<ChildProcess> {
  const env = engineEnv();
  // `start` reads every INNGEST_* variable as a setting: pass none but the gRPC ports it has no flag for.
  for (const key of Object.keys(env)) if (key.startsWith("INNGEST_")) delete env[key];
  env.INNGEST_CONNECT_GATEWAY_GRPC_PORT = String(ports.connectGatewayGrpc);
  env.INNGEST_CONNECT_EXECUTOR_GRPC_PORT = String(ports.connectExecutorGrpc);
  const args = [
    "start",
    "--host",
    "127.0.0.1",
    "--port",
    String(ports.api),
    "--connect-gateway-port",
    String(ports.connectGateway),
  ];
  args.push(
    "--event-key",
    eventKey,
    "--signing-key",
    signingKey,
    "-u",
    `${app.url}/api/inngest`,
    "--sqlite-dir",
    sqliteDir,
  );
  const child = spawn(inject("engineBin"), args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  for (const stream of [child.stdout!, child.stderr!])
    stream.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-8_000)));
  for (let tries = 0; tries < 240; tries++) {
    if (child.exitCode !== null) break;
    try {
      const response = await fetch(`http://127.0.0.1:${ports.api}/v0/gql`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: "{ apps { functions { slug } } }" }),
        signal: AbortSignal.timeout(2_000),
      });
      const { data } = (await response.json()) as { data?: { apps: { functions: { slug: string }[] }[] } };
      if (data?.apps.some((a) => a.functions.some((f) => f.slug === "dyno-coding-agent"))) return child;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  child.kill("SIGKILL");
  throw new Error(`inngest start was not ready:\n${log}`);
}

async function stopEngine() {
  if (!engine || engine.exitCode !== null || engine.signalCode !== null) return;
  const exited = new Promise((resolve) => engine!.once("exit", resolve));
  engine.kill("SIGTERM");
  await exited;
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
