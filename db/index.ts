import path from "node:path";
import { env } from "../app/env.server";
import { createDatabase, type Database } from "./client";
import { runEventsBus } from "./run-events";

export * from "./client";
export * as schema from "./schema";

/**
 * The process-wide database. Kept on globalThis because Vite's dev server
 * loads app modules in a module graph of its own (and reloads them on edit):
 * a second PGlite on the same folder would corrupt it, and a second pool
 * would leak connections.
 */
const globalForDb = globalThis as typeof globalThis & { __dynoDatabase?: Database };

export function getDatabase(): Database {
  if (!globalForDb.__dynoDatabase) {
    const { DATABASE_URL, DYNO_DATA_DIR, RUN_EVENTS_FANOUT } = env();
    globalForDb.__dynoDatabase = DATABASE_URL
      ? createDatabase({ url: DATABASE_URL })
      : createDatabase({ pglite: path.resolve(DYNO_DATA_DIR, "pglite") });
    runEventsBus(globalForDb.__dynoDatabase).fanout = RUN_EVENTS_FANOUT;
  }
  return globalForDb.__dynoDatabase;
}

/** Closes the process-wide database, if one was opened. */
export async function closeDatabase(): Promise<void> {
  const database = globalForDb.__dynoDatabase;
  globalForDb.__dynoDatabase = undefined;
  await database?.close();
}

/** The app's Drizzle handle: postgres.js when DATABASE_URL is set, embedded PGlite otherwise. */
export const db = new Proxy({} as Database["db"], {
  get: (_target, property) => Reflect.get(getDatabase().db, property),
});
