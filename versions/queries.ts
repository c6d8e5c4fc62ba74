/** Reading versions: a project's list, a run's versions, and the version a run started from. */
import { and, asc, desc, eq, lt } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../db/client";
import { runs, versions, type Version } from "../db/schema";

export type ListedVersion = Version & { prompt: string | null };

/** Newest first, bounded. */
export async function listVersions(db: Db, projectId: string, limit = 200): Promise<ListedVersion[]> {
  const rows = await db
    .select({ version: versions, prompt: runs.prompt })
    .from(versions)
    .leftJoin(runs, eq(runs.id, versions.runId))
    .where(eq(versions.projectId, projectId))
    .orderBy(desc(versions.number))
    .limit(limit);
  return rows.map((row) => ({ ...row.version, prompt: row.prompt }));
}

export async function runVersions(db: Db, runId: string): Promise<Version[]> {
  return db.select().from(versions).where(eq(versions.runId, runId)).orderBy(asc(versions.number));
}

export async function findVersion(db: Db, projectId: string, versionId: string): Promise<Version | undefined> {
  const [row] = await db
    .select()
    .from(versions)
    .where(and(eq(versions.projectId, projectId), eq(versions.id, versionId)));
  return row;
}

/**
 * The files a run started from: its run-start version, else the last version
 * before its first one. undefined when the run changed nothing (no version
 * of its own) or nothing came before it.
 */
export async function versionBeforeRun(db: Db, runId: string): Promise<Version | undefined> {
  const own = await runVersions(db, runId);
  const first = own[0];
  if (!first) return undefined;
  if (first.kind === "run-start") return first;
  const [before] = await db
    .select()
    .from(versions)
    .where(and(eq(versions.projectId, first.projectId), lt(versions.number, first.number)))
    .orderBy(desc(versions.number))
    .limit(1);
  return before;
}

/** Whether a run left files different from those it started with (what "Undo this run" would undo). */
export async function runChangedFiles(db: Db, runId: string): Promise<boolean> {
  const own = await runVersions(db, runId);
  const base = await versionBeforeRun(db, runId);
  const last = own.at(-1);
  return !!base && !!last && last.treeSha !== base.treeSha;
}

/** The project's newest version, with the number of the version it restored (a restore or an undo); null: none. */
export async function newestVersion(
  db: Db,
  projectId: string,
): Promise<{ number: number; kind: Version["kind"]; restoredFromNumber: number | null } | null> {
  const restored = alias(versions, "restored");
  const [row] = await db
    .select({ number: versions.number, kind: versions.kind, restoredFromNumber: restored.number })
    .from(versions)
    .leftJoin(restored, eq(restored.id, versions.restoredFrom))
    .where(eq(versions.projectId, projectId))
    .orderBy(desc(versions.number))
    .limit(1);
  return row ?? null;
}
