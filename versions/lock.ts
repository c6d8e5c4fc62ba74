/**
 * What serialises a project's versions (its takes, restores and prunes): on Postgres, an advisory lock held by the
 * writer's transaction, across every process. On embedded PGlite (one process, one connection, each transaction
 * exclusive), a queue in this process: a prune's repack, which can take minutes, must not hold the app's only
 * connection, so takes wait for it there.
 */
import { sql } from "drizzle-orm";
import { PgliteDatabase } from "drizzle-orm/pglite";
import type { Db } from "../db/client";
import { lockProjectEventsAfter } from "../db/run-events";

/** First key of the two-key advisory lock. */
const VERSIONS_LOCK_CLASS = 0x0d1e1;

/**
 * Holds the project's versions lock until `tx` ends: no take (and no prune) of its history runs meanwhile. With
 * `andEvents`, the project's event lock too, after it and in the same statement (a take that writes a run event).
 */
export async function lockVersions(
  tx: Pick<Db, "execute">,
  projectId: string,
  { andEvents = false }: { andEvents?: boolean } = {},
): Promise<void> {
  const versionsLock = sql`pg_advisory_xact_lock(${VERSIONS_LOCK_CLASS}, hashtext(${projectId}))`;
  if (andEvents) await lockProjectEventsAfter(tx, projectId, versionsLock);
  else await tx.execute(sql`select ${versionsLock}`);
}

/** The tail of each project's queue of writers in this process. */
const queues = new Map<string, Promise<unknown>>();

/** Runs `write` once every earlier writer of the project's versions in this process has ended. */
export function inVersionsQueue<T>(projectId: string, write: () => Promise<T>): Promise<T> {
  const ran = (queues.get(projectId) ?? Promise.resolve()).then(write);
  const tail = ran.then(
    () => undefined,
    () => undefined,
  );
  queues.set(projectId, tail);
  void tail.then(() => {
    if (queues.get(projectId) === tail) queues.delete(projectId);
  });
  return ran;
}

/** Embedded PGlite: one process, one connection, so a transaction held open blocks the whole app. */
export function isEmbedded(db: Db): boolean {
  return db instanceof PgliteDatabase;
}

/**
 * Runs `work` (a prune, a pack: git rewriting the history's objects) while no take or other such work of the
 * project runs: on Postgres inside a transaction holding the versions lock, which every process honours; on PGlite
 * in this process's queue, holding no transaction (it would stall the app's one connection for as long as git takes).
 */
export function withVersionsHeld<T>(
  db: Db,
  projectId: string,
  work: (tx: Pick<Db, "select">) => Promise<T>,
): Promise<T> {
  if (isEmbedded(db)) return inVersionsQueue(projectId, () => work(db));
  return db.transaction(async (tx) => {
    await lockVersions(tx, projectId);
    return work(tx);
  });
}
