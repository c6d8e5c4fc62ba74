/**
 * Versions as rows: each one a commit in the project's history
 * (store.ts) plus a `versions` row, one per (run, iteration, kind), and a
 * `version` run event so the live card can link it. Taking one holds a
 * per-project advisory lock for the whole take (git and rows), so two
 * writers (a run's last step and its cancel handler, a restore and a
 * queued run's start) never interleave, and a retried step finds the row
 * it already wrote instead of adding one.
 */
import { randomUUID } from "node:crypto";
import { and, desc, eq, inArray, or } from "drizzle-orm";
import type { Db } from "../db/client";
import { pgSafeText } from "../db/pg-safe";
import { appendRunEvent } from "../db/run-events";
import { versions, type Version, type VersionKind } from "../db/schema";
import { GitError } from "./git";
import { inVersionsQueue, isEmbedded, lockVersions, withVersionsHeld } from "./lock";
import { boundHistory, describePrune } from "./prune";
import type { ProjectHistory } from "./store";

export interface VersionRequest {
  projectId: string;
  runId: string | null;
  iteration: number;
  kind: VersionKind;
  tool?: string | null;
  /** The commit message (an export shows it): names the prompt and the run. */
  message: string;
  /** "changed": only when the files differ from the last version; "commit": always (a run's end, a restore). */
  mode: "changed" | "commit";
  restoredFrom?: string | null;
  runStatus?: string | null;
  /** Only these workspace files can have changed since the last version (a write_file step's): store.ts may read them alone. */
  files?: string[];
  /** Runs under the lock, in the take's transaction, before the files are read (a restore writes the workspace here). */
  before?: (tx: Pick<Db, "select">) => Promise<void>;
}

export async function latestVersion(db: Pick<Db, "select">, projectId: string): Promise<Version | undefined> {
  const [last] = await db
    .select()
    .from(versions)
    .where(eq(versions.projectId, projectId))
    .orderBy(desc(versions.number))
    .limit(1);
  return last;
}

/** Loose objects are packed after every this many versions of a project (store.ts pack). */
export const PACK_EVERY_VERSIONS = 100;

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/**
 * Takes a version, or returns the one this (run, iteration, kind) already
 * has. null when mode is "changed" and nothing changed.
 */
export async function takeVersion(db: Db, history: ProjectHistory, request: VersionRequest): Promise<Version | null> {
  return (await writeWithVersion(db, history, request)).version;
}

/**
 * Runs `write` and takes the version in one transaction: a step saves its result and its version together (one
 * transaction, its locks asked for once), so the version costs the step a few statements, not a transaction of its
 * own (decision 026, stop 23). Without `write`, a take alone (takeVersion).
 *
 * With a write, a history that cannot be written (a full disk, a broken repository) costs the version, not the
 * write: the error goes to the server log and the write commits. A take alone throws it.
 */
export async function writeWithVersion<T = undefined>(
  db: Db,
  history: ProjectHistory,
  request: VersionRequest,
  write?: (tx: Tx) => Promise<T>,
): Promise<{ value: T | undefined; version: Version | null }> {
  // On PGlite a prune holds no transaction (it would stall the app's one connection): takes queue behind it here.
  const transaction = () => db.transaction((tx) => takeInTransaction(tx, history, request, write));
  const taken = isEmbedded(db) ? await inVersionsQueue(request.projectId, transaction) : await transaction();
  const row = taken.version;
  // After the take's transaction, with the project's versions held as a prune holds them: a pack and a prune both
  // rewrite the history's packs and must not overlap. A retried take packs again, which git makes cheap.
  const packs = !!row && row.number % PACK_EVERY_VERSIONS === 0;
  if (packs) {
    await withVersionsHeld(db, request.projectId, () => history.pack()).catch((error: unknown) => {
      console.warn(`history of project ${request.projectId}: packing failed (the versions are kept): ${String(error)}`);
    });
  }
  // The size is checked where it can have grown the most (a run's end, a restore) and at each pack.
  if (row && (packs || row.kind === "run-end" || row.kind === "restore")) {
    await boundHistory(db, history, request.projectId)
      .then((outcome) => {
        if (outcome) console.info(`history of project ${request.projectId}: ${describePrune(outcome)}`);
      })
      .catch((error: unknown) => {
        console.warn(
          `history of project ${request.projectId}: pruning failed (the versions are kept): ${String(error)}`,
        );
      });
  }
  return taken;
}

/** A history that cannot be written (git failed, or a file system call did), as opposed to the database failing. */
export function isHistoryError(error: unknown): boolean {
  return error instanceof GitError || typeof (error as NodeJS.ErrnoException | undefined)?.syscall === "string";
}

/**
 * The take's statements, sent together where they do not wait on each other's answers (postgres-js pipelines a
 * transaction's queries; each still runs after the one before it, so the read sees what the lock's previous holder
 * committed): the two locks in one statement, then one read for the row this take may already have and the newest
 * version, the caller's write, the history, and the row with its run event (whose insert carries its NOTIFY). The
 * row's id is made here, so the run event that names it goes out with the row.
 */
async function takeInTransaction<T>(
  tx: Tx,
  history: ProjectHistory,
  request: VersionRequest,
  write: ((tx: Tx) => Promise<T>) | undefined,
): Promise<{ value: T | undefined; version: Version | null }> {
  // The event lock too, in the order every writer takes the two (versions, then events): the take's event is
  // written at its end, and asking for the lock there would cost a statement of its own.
  const [, found] = await Promise.all([
    lockVersions(tx, request.projectId, { andEvents: !!request.runId }),
    tx
      .select()
      .from(versions)
      .where(
        or(
          request.runId
            ? and(
                eq(versions.runId, request.runId),
                eq(versions.iteration, request.iteration),
                eq(versions.kind, request.kind),
              )
            : undefined,
          inArray(
            versions.id,
            tx
              .select({ id: versions.id })
              .from(versions)
              .where(eq(versions.projectId, request.projectId))
              .orderBy(desc(versions.number))
              .limit(1),
          ),
        ),
      ),
  ]);
  const value = write ? await write(tx) : undefined;
  const existing = found.find(
    (v) => v.runId === request.runId && v.iteration === request.iteration && v.kind === request.kind,
  );
  if (request.runId && existing) return { value, version: existing };
  // A restore writes the workspace under the lock, so the newest version is read after it.
  const parent = request.before
    ? (await request.before(tx), await latestVersion(tx, request.projectId))
    : found.reduce<Version | undefined>((newest, v) => (!newest || v.number > newest.number ? v : newest), undefined);
  let taken;
  try {
    taken = await history.take({
      parent: parent ? { commit: parent.commitSha, tree: parent.treeSha } : null,
      message: request.message,
      mode: request.mode,
      date: new Date(),
      files: request.files,
      // A run's last version reads every file: whatever the feed of changes could miss is in it at the latest.
      exact: request.kind === "run-end",
    });
  } catch (error) {
    if (!write || !isHistoryError(error)) throw error;
    console.warn(
      `version (${request.kind} ${request.iteration}) of project ${request.projectId} not taken: ${String(error)}`,
    );
    return { value, version: null };
  }
  if (!taken.commit || !taken.changes) {
    // Nothing new; the branch may still point at a commit a crash left behind.
    if (parent) await history.setHead(parent.commitSha);
    return { value, version: null };
  }
  const values = {
    id: randomUUID(),
    projectId: request.projectId,
    number: (parent?.number ?? 0) + 1,
    runId: request.runId,
    iteration: request.iteration,
    kind: request.kind,
    tool: request.tool ?? null,
    commitSha: taken.commit,
    treeSha: taken.tree,
    parentSha: parent?.commitSha ?? null,
    filesAdded: taken.changes.added,
    filesChanged: taken.changes.changed,
    filesDeleted: taken.changes.deleted,
    skipped: taken.skipped.map((s) => ({ path: pgSafeText(s.path), reason: s.reason })),
    restoredFrom: request.restoredFrom ?? null,
    runStatus: request.runStatus ?? null,
  };
  const [[row]] = await Promise.all([
    tx.insert(versions).values(values).returning(),
    request.runId
      ? appendRunEvent(tx, {
          runId: request.runId,
          projectId: request.projectId,
          type: "version",
          dedupeKey: `version-${request.kind}-${request.iteration}`,
          data: {
            versionId: values.id,
            number: values.number,
            kind: values.kind,
            iteration: values.iteration,
            tool: values.tool,
            added: values.filesAdded,
            changed: values.filesChanged,
            deleted: values.filesDeleted,
            skipped: values.skipped.length,
          },
        })
      : undefined,
  ]);
  if (!row) throw new Error("versions insert returned no row");
  return { value, version: row };
}

/** "Run 1a2b3c4d: <prompt's first line>" and what made the version, for the commit message. */
export function versionMessage(parts: {
  runId: string | null;
  prompt?: string | null;
  kind: VersionKind;
  iteration?: number;
  tool?: string | null;
  status?: string | null;
  restoredNumber?: number;
}): string {
  const prompt = (parts.prompt ?? "").replace(/\s+/g, " ").trim();
  const short = prompt.length > 72 ? `${prompt.slice(0, 71)}…` : prompt;
  const run = parts.runId ? `Run ${parts.runId.slice(0, 8)}` : "Builder";
  const what =
    parts.kind === "run-start"
      ? "before the run"
      : parts.kind === "step"
        ? `step ${parts.iteration ?? 0}${parts.tool ? ` (${parts.tool})` : ""}`
        : parts.kind === "run-end"
          ? `run ended (${parts.status ?? "ended"})`
          : `restored version ${parts.restoredNumber ?? "?"}`;
  const title =
    parts.kind === "restore" ? `Restore version ${parts.restoredNumber ?? "?"}` : `${run}: ${short || what}`;
  return `${title}\n\n${what}${parts.runId ? `\nrun ${parts.runId}` : ""}${prompt && prompt !== short ? `\n\n${prompt.slice(0, 2000)}` : ""}\n`;
}
