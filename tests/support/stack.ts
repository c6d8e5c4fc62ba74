/**
 * The whole stack for integration tests: a fresh database, the app server
 * (in this process, so the test reads the same database, PGlite included)
 * the real Inngest engine on free ports, calling the app's /api/inngest, and
 * the model stand-in (runs pick a script with `scripted(stack.replay, …)`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { inject } from "vitest";
import type { Database } from "../../db/client";
import { startEngineDevServer, type EngineDevServer } from "../../scripts/lib/engine-process";
import type { AppServer } from "../../server/app";
import { reserveTestDatabase, type ReservedDatabase } from "./database";
import { startTestModel, type ReplayServer } from "./model";
import { freeEnginePorts } from "./ports";

export interface Stack {
  app: AppServer;
  engine: EngineDevServer;
  /** The app's own database (the process-wide one). */
  database: Database;
  /** DYNO_DATA_DIR: the local sandbox's workspaces are under it. */
  dataDir: string;
  /** A project's local sandbox folder. */
  workspace(projectId: string): string;
  /** The replay server the app reaches through AGENT_BASE_URL. */
  replay: ReplayServer;
  /** Stops the engine and starts a new one on the same ports, with empty state (a restarted dev server). */
  restartEngine(): Promise<EngineDevServer>;
  /** Stops the engine without starting another (an engine that is down). */
  stopEngine(): Promise<void>;
  stop(): Promise<void>;
}

export async function startStack({ env = {} }: { env?: Record<string, string> } = {}): Promise<Stack> {
  const model = await startTestModel();
  const reserved: ReservedDatabase = await reserveTestDatabase();
  const ports = await freeEnginePorts();
  const ownDataDir = reserved.env.DYNO_DATA_DIR ? undefined : mkdtempSync(path.join(os.tmpdir(), "dyno-data-"));
  const dataDir = reserved.env.DYNO_DATA_DIR ?? ownDataDir!;
  // No periodic reconcile unless a test asks: runs that fixtures write straight to the database were never sent to the engine.
  Object.assign(process.env, reserved.env, { DYNO_DATA_DIR: dataDir, RUN_RECONCILE_INTERVAL: "0s" }, model.env, env, {
    INNGEST_DEV: "1",
    INNGEST_BASE_URL: `http://127.0.0.1:${ports.api}`,
  });

  const { startAppServer } = await import("../../server/app");
  const { getDatabase } = await import("../../db");
  const app = await startAppServer({ mode: "development", port: 0, watch: false });
  let engine: EngineDevServer;
  const startEngine = () =>
    startEngineDevServer({
      bin: inject("engineBin"),
      appUrl: `${app.url}/api/inngest`,
      ports,
      waitForFunctions: ["dyno-coding-agent", "dyno-mark-run-stopped"],
    });
  try {
    engine = await startEngine();
  } catch (error) {
    await app.close();
    await reserved.release();
    await model.replay.close();
    if (ownDataDir) rmSync(ownDataDir, { recursive: true, force: true });
    throw error;
  }

  return {
    app,
    get engine() {
      return engine;
    },
    database: getDatabase(),
    dataDir,
    workspace: (projectId) => path.join(dataDir, "workspaces", projectId),
    replay: model.replay,
    async restartEngine() {
      await engine.stop();
      engine = await startEngine();
      return engine;
    },
    stopEngine: () => engine.stop(),
    async stop() {
      await engine.stop();
      await app.close();
      await reserved.release();
      await model.replay.close();
      if (ownDataDir) rmSync(ownDataDir, { recursive: true, force: true });
    },
  };
}
