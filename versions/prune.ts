/**
 * The bound on a project's history (VERSIONS_MAX_HISTORY_SIZE, decision 026,
 * third addendum). When the repository is over it, the oldest versions are
 * pruned: the oldest one kept becomes git's shallow boundary and a full
 * repack drops what only older versions reached (store.ts pruneBefore). The
 * newest MIN_KEPT_VERSIONS versions are never pruned, and the newest run's
 * (from the one it started at, which "Undo this run" restores) only when that
 * run alone outgrew the bound.
 *
 * A pruned version's row stays (run events and the History list name it),
 * but its files are gone: diffs, files, zips and restores of it are refused
 * with a clear error. Which versions are pruned is read from the history
 * itself (its shallow boundary), so a crash mid-prune leaves no row claiming
 * files the repository no longer has.
 */
import { and, asc, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { versions, type Version } from "../db/schema";
import { withVersionsHeld } from "./lock";
import type { ProjectHistory } from "./store";

/** The newest versions a prune always keeps, whatever the bound. */
export const MIN_KEPT_VERSIONS = 20;
/** A prune aims this far under the bound, so the next runs do not prune again at once. */
const PRUNE_TARGET = 0.75;
/** A prune's rounds: each repacks and measures again, dropping more only while the history is over its target. */
const MAX_ROUNDS = 4;

export interface PruneOutcome {
  sizeBefore: number;
  sizeAfter: number;
  bound: number;
  /** Versions newly pruned. */
  pruned: number;
  /** The oldest version now kept (null: none was pruned, ever). */
  oldestKeptNumber: number | null;
}

export function describePrune(outcome: PruneOutcome): string {
  const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  const what = outcome.pruned
    ? `pruned ${outcome.pruned} version${outcome.pruned === 1 ? "" : "s"} (versions before ${outcome.oldestKeptNumber} are gone)`
    : "nothing could be pruned (the newest versions are always kept)";
  return `${mb(outcome.sizeBefore)} was over the ${mb(outcome.bound)} bound: ${what}; now ${mb(outcome.sizeAfter)}`;
}

/**
 * Prunes the project's oldest versions while its history is over the bound. null when it is under (the usual
 * case: one walk of the repository's folder). Keeps the project's takes out throughout (lock.ts).
 */
export async function boundHistory(db: Db, history: ProjectHistory, projectId: string): Promise<PruneOutcome | null> {
  const bound = history.maxHistoryBytes;
  if (!Number.isFinite(bound)) return null;
  const sizeBefore = await history.sizeBytes();
  if (sizeBefore <= bound) return null;
  // Still over after a prune that did all it could (the versions it may not prune are over the bound): a full
  // repack at every run's end would cost each of them seconds for nothing. It tries again once the history grew.
  const stuckAt = stillOver.get(history);
  if (stuckAt !== undefined && sizeBefore < stuckAt + bound * RETRY_GROWTH) return null;
  const outcome = await pruneUnderLock(db, history, projectId, sizeBefore, bound);
  if (outcome.sizeAfter > bound) stillOver.set(history, outcome.sizeAfter);
  else stillOver.delete(history);
  return outcome;
}

/** The size a history was left at by a prune that could not bring it under its bound. */
const stillOver = new WeakMap<ProjectHistory, number>();
/** How much of the bound such a history grows by before a prune is tried again. */
const RETRY_GROWTH = 0.1;

async function pruneUnderLock(
  db: Db,
  history: ProjectHistory,
  projectId: string,
  sizeBefore: number,
  bound: number,
): Promise<PruneOutcome> {
  return withVersionsHeld(db, projectId, (tx) => pruneRounds(tx, history, projectId, sizeBefore, bound));
}

async function pruneRounds(
  tx: Pick<Db, "select">,
  history: ProjectHistory,
  projectId: string,
  sizeBefore: number,
  bound: number,
): Promise<PruneOutcome> {
  const rows = await tx
    .select({ number: versions.number, commitSha: versions.commitSha, runId: versions.runId, kind: versions.kind })
    .from(versions)
    .where(eq(versions.projectId, projectId))
    .orderBy(asc(versions.number));
  const oldest = await history.oldestKept();
  const start = Math.max(0, oldest ? rows.findIndex((row) => row.commitSha === oldest) : 0);
  const newest = rows.length - MIN_KEPT_VERSIONS;
  let boundary = start;
  // Loose objects alone may make the size: a full repack first, then prune only if that was not enough.
  await history.repackAll();
  let size = await history.sizeBytes();
  const target = bound * PRUNE_TARGET;
  // First only versions older than the newest run's start (its "Undo this run" keeps working); into that run only
  // when it alone outgrew the bound.
  for (const limit of [Math.min(newest, undoBaseIndex(rows)), newest]) {
    if (limit < newest && size <= target) break;
    if (limit === newest && size <= bound) break;
    for (let round = 1; round <= MAX_ROUNDS && size > target && boundary < limit; round++) {
      // The first round drops the share of the prunable versions the excess suggests; later ones half the rest.
      const share = round === 1 ? Math.min(1, (size - target) / size) : round === MAX_ROUNDS ? 1 : 0.5;
      boundary = Math.min(limit, boundary + Math.max(1, Math.ceil((limit - boundary) * share)));
      await history.pruneBefore(rows[boundary]!.commitSha);
      size = await history.sizeBytes();
    }
  }
  return {
    sizeBefore,
    sizeAfter: size,
    bound,
    pruned: boundary - start,
    oldestKeptNumber: boundary > start || oldest ? (rows[boundary]?.number ?? null) : null,
  };
}

/** The index of the version the newest run started from: it and every later version stay. */
function undoBaseIndex(rows: Pick<Version, "runId" | "kind">[]): number {
  let newestRun: string | null = null;
  for (let i = rows.length - 1; i >= 0 && !newestRun; i--) newestRun = rows[i]!.runId;
  if (!newestRun) return rows.length;
  const first = rows.findIndex((row) => row.runId === newestRun);
  return rows[first]!.kind === "run-start" ? first : Math.max(0, first - 1);
}

/** The number of the oldest version whose files the history still has; null when nothing was ever pruned. */
export async function oldestKeptNumber(
  db: Pick<Db, "select">,
  history: ProjectHistory,
  projectId: string,
): Promise<number | null> {
  const oldest = await history.oldestKept();
  if (!oldest) return null;
  const [row] = await db
    .select({ number: versions.number })
    .from(versions)
    .where(and(eq(versions.projectId, projectId), eq(versions.commitSha, oldest)));
  return row?.number ?? null;
}

export function prunedMessage(number: number, oldestKept: number): string {
  return `Version ${number} was pruned to keep the project's history under its size bound: versions before ${oldestKept} are gone.`;
}
