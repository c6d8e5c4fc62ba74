import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { createDatabase, type Database, type DatabaseOptions } from "../../db/client";

export type Driver = "postgres" | "pglite";

/** The drivers tests run on: Postgres at DATABASE_URL when set, PGlite otherwise. */
export function defaultDriver(): Driver {
  return process.env.DATABASE_URL ? "postgres" : "pglite";
}

/** Both drivers when a server is reachable (unit tests cover both), else PGlite. */
export function availableDrivers(): Driver[] {
  return process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];
}

export interface TestDatabase {
  database: Database;
  /** Options that open this same database (for the app under test). */
  options: DatabaseOptions;
  /** Environment variables that point the app at it. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database: a new database on the DATABASE_URL server
 * (dropped afterwards), or a PGlite folder in a temp directory (removed).
 */
export async function createTestDatabase(driver: Driver = defaultDriver()): Promise<TestDatabase> {
  if (driver === "postgres") {
    const serverUrl = process.env.DATABASE_URL;
    if (!serverUrl) throw new Error("DATABASE_URL is not set");
    const name = `dyno_test_${randomBytes(6).toString("hex")}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    const options = { url: url.toString(), maxConnections: 5 };
    const database = createDatabase(options);
    await database.migrate();
    return {
      database,
      options,
      env: { DATABASE_URL: options.url },
      async drop() {
        await database.close();
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        await admin.end();
      },
    };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "dyno-pglite-"));
  const options = { pglite: path.join(dir, "pglite") };
  const database = createDatabase(options);
  await database.migrate();
  return {
    database,
    options,
    env: { DATABASE_URL: "", DYNO_DATA_DIR: dir },
    async drop() {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
