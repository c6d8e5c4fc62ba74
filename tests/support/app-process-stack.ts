/**
 * The stack for tests that kill the app (SIGKILL) and start it again: a fresh Postgres database (embedded PGlite
 * allows one process per folder), the model stand-in, the app server as a child process and the dev engine calling
 * it. This process reads the same database and sends prompts as the app would (its environment is the app's).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import getPort from "get-port";
import { inject } from "vitest";
import { createDatabase, type Database } from "../../db/client";
import { startEngineDevServer, type EngineDevServer } from "../../scripts/lib/engine-process";
import { startAppProcess, type AppProcess } from "./app-process";
import { reserveTestDatabase, type ReservedDatabase } from "./database";
import { startTestModel, type ReplayServer } from "./model";
import { freeEnginePorts } from "./ports";

export interface AppProcessStack {
  database: Database;
  replay: ReplayServer;
  /** DYNO_DATA_DIR: the local sandbox's workspaces are under it. */
  dataDir: string;
  /** The app's environment (restart it with changes to this). */
  env: Record<string, string>;
  /** The running app process. */
  readonly app: AppProcess;
  /** Kills the app (SIGTERM unless told) and starts it again on the same port, with `env` changed as given. */
  restartApp(options?: { signal?: NodeJS.Signals; env?: Record<string, string> }): Promise<AppProcess>;
  stop(): Promise<void>;
}

export async function startAppProcessStack(dataDirPrefix: string): Promise<AppProcessStack> {
  const reserved: ReservedDatabase = await reserveTestDatabase("postgres");
  const database = createDatabase(reserved.options);
  await database.migrate();
  const model = await startTestModel();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), dataDirPrefix));
  const ports = await freeEnginePorts();
  const env: Record<string, string> = {
    ...reserved.env,
    ...model.env,
    DYNO_DATA_DIR: dataDir,
    PORT: String(await getPort({ host: "127.0.0.1" })),
    // The preview server would take PORT + 1, which may be a port picked for the engine.
    PREVIEW_PORT: "0",
    INNGEST_DEV: "1",
    INNGEST_BASE_URL: `http://127.0.0.1:${ports.api}`,
  };
  Object.assign(process.env, env);
  let app = await startAppProcess(env);
  const engine: EngineDevServer = await startEngineDevServer({
    bin: inject("engineBin"),
    appUrl: `${app.url}/api/inngest`,
    ports,
    waitForFunctions: ["dyno-coding-agent", "dyno-mark-run-stopped"],
  });
  return {
    database,
    replay: model.replay,
    dataDir,
    env,
    get app() {
      return app;
    },
    async restartApp({ signal = "SIGTERM", env: changes = {} } = {}) {
      await app.kill(signal);
      app = await startAppProcess({ ...env, ...changes });
      return app;
    },
    async stop() {
      await engine.stop();
      await app.kill();
      await model.replay.close();
      await database.close();
      await reserved.release();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
