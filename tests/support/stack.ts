/**
 * The whole stack for integration tests: a fresh database, the app server
 * (in this process, so the test reads the same database, PGlite included)
 * and the real Inngest engine on free ports, calling the app's /api/inngest.
 */
import { inject } from "vitest";
import type { Database } from "../../db/client";
import { startEngineDevServer, type EngineDevServer } from "../../scripts/lib/engine-process";
import type { AppServer } from "../../server/app";
import { reserveTestDatabase, type ReservedDatabase } from "./database";
import { freeEnginePorts } from "./ports";

export interface Stack {
  app: AppServer;
  engine: EngineDevServer;
  /** The app's own database (the process-wide one). */
  database: Database;
  stop(): Promise<void>;
}

export async function startStack({ env = {} }: { env?: Record<string, string> } = {}): Promise<Stack> {
  const reserved: ReservedDatabase = await reserveTestDatabase();
  const ports = await freeEnginePorts();
  Object.assign(process.env, reserved.env, env, {
    INNGEST_DEV: "1",
    INNGEST_BASE_URL: `http://127.0.0.1:${ports.api}`,
  });

  const { startAppServer } = await import("../../server/app");
  const { getDatabase } = await import("../../db");
  const app = await startAppServer({ mode: "development", port: 0, watch: false });
  let engine: EngineDevServer;
  try {
    engine = await startEngineDevServer({
      bin: inject("engineBin"),
      appUrl: `${app.url}/api/inngest`,
      ports,
      waitForFunctions: ["dyno-coding-agent", "dyno-mark-run-stopped"],
    });
  } catch (error) {
    await app.close();
    await reserved.release();
    throw error;
  }

  return {
    app,
    engine,
    database: getDatabase(),
    async stop() {
      await engine.stop();
      await app.close();
      await reserved.release();
    },
  };
}
