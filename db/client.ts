import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import * as schema from "./schema";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export type DatabaseOptions =
  /** A server: postgres.js. `onQuery` hears each statement sent (benchmarks count them). */
  | { url: string; maxConnections?: number; onQuery?: (statement: string) => void }
  /** Embedded: PGlite in this folder, or in memory with "memory://". */
  | { pglite: string };

/** Called with each payload; `onListen` runs on every (re)connect so callers can re-sync. */
export type Listen = (
  channel: string,
  onNotify: (payload: string) => void,
  onListen?: () => void,
) => Promise<() => Promise<void>>;

/** A database connection, whichever driver serves it. */
export interface Database {
  db: Db;
  driver: "postgres" | "pglite";
  listen: Listen;
  migrate(): Promise<void>;
  close(): Promise<void>;
}

export const migrationsFolder = fileURLToPath(new URL("./migrations", import.meta.url));

export function createDatabase(options: DatabaseOptions): Database {
  return "url" in options
    ? createPostgres(options.url, options.maxConnections, options.onQuery)
    : createPglite(options.pglite);
}

function createPostgres(url: string, maxConnections = 10, onQuery?: (statement: string) => void): Database {
  const sql = postgres(url, {
    max: maxConnections,
    onnotice: () => {},
    // Keep LISTEN alive across idle periods and server restarts.
    idle_timeout: 0,
    ...(onQuery ? { debug: (_connection: number, statement: string) => onQuery(statement) } : {}),
  });
  const db = drizzlePostgres(sql, { schema }) as unknown as Db;
  return {
    db,
    driver: "postgres",
    async listen(channel, onNotify, onListen) {
      const { unlisten } = await sql.listen(channel, onNotify, onListen);
      return unlisten;
    },
    migrate: () => migratePostgres(drizzlePostgres(sql), { migrationsFolder }),
    close: () => sql.end({ timeout: 5 }),
  };
}

function createPglite(dataDir: string): Database {
  if (!dataDir.startsWith("memory://")) mkdirSync(path.dirname(path.resolve(dataDir)), { recursive: true });
  const client = new PGlite(dataDir);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    db,
    driver: "pglite",
    async listen(channel, onNotify, onListen) {
      const unlisten = await client.listen(channel, onNotify);
      onListen?.();
      return unlisten;
    },
    migrate: () => migratePglite(drizzlePglite(client), { migrationsFolder }),
    close: () => client.close(),
  };
}
