/** The per-project advisory lock that serialises a project's versions: its takes, restores and prunes. */
import { sql } from "drizzle-orm";
import type { Db } from "../db/client";

/** First key of the two-key advisory lock. */
const VERSIONS_LOCK_CLASS = 0x0d1e1;

/** Holds the project's versions lock until `tx` ends: no take (and no prune) of its history runs meanwhile. */
export function lockVersions(tx: Pick<Db, "execute">, projectId: string) {
  return tx.execute(sql`select pg_advisory_xact_lock(${VERSIONS_LOCK_CLASS}, hashtext(${projectId}))`);
}
