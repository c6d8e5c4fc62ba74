import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { createDatabase, type Database, type DatabaseOptions } from "../../db/client";

export type Driver = "postgres" | "pglite";

/** The driver tests run on: Postgres at DATABASE_URL when set, PGlite otherwise. */
export function defaultDriver(): Driver {
  return process.env.DATABASE_URL ? "postgres" : "pglite";
}

/** Both drivers when a server is configured (unit tests cover both), else PGlite alone. */
export function availableDrivers(): Driver[] {
  return process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];
}

export interface ReservedDatabase {
  driver: Driver;
  /** Options that open it. */
  options: DatabaseOptions;
  /** Environment variables that point the app at it. */
  env: Record<string, string>;
  /** Drops the database (Postgres) or removes its folder (PGlite). Close connections first. */
  release(): Promise<void>;
}

/**
 * An empty database nobody has opened yet: a new database on the
 * DATABASE_URL server, or a temp folder for PGlite. The app under test opens
 * it itself (PGlite allows one opener per folder).
 */
export async function reserveTestDatabase(driver: Driver = defaultDriver()): Promise<ReservedDatabase> {
  if (driver === "postgres") {
    const serverUrl = process.env.DATABASE_URL;
    if (!serverUrl) throw new Error("DATABASE_URL is not set");
    const name = `dyno_test_${randomBytes(6).toString("hex")}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    return {
      driver,
      options: { url: url.toString(), maxConnections: 5 },
      env: { DATABASE_URL: url.toString() },
      async release() {
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        await admin.end();
      },
    };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "dyno-test-"));
  return {
    driver,
    options: { pglite: path.join(dir, "pglite") },
    env: { DATABASE_URL: "", DYNO_DATA_DIR: dir },
    async release() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestDatabase {
  driver: Driver;
  database: Database;
  drop(): Promise<void>;
}

/** A fresh database, opened and migrated. */
export async function createTestDatabase(driver: Driver = defaultDriver()): Promise<TestDatabase> {
  const reserved = await reserveTestDatabase(driver);
  const database = createDatabase(reserved.options);
  await database.migrate();
  return {
    driver,
    database,
    async drop() {
      await database.close();
      await reserved.release();
    },
  };
}
