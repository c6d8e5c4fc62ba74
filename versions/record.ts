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
import { and, desc, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { pgSafeText } from "../db/pg-safe";
import { appendRunEvent, lockProjectEvents } from "../db/run-events";
import { versions, type Version, type VersionKind } from "../db/schema";
import { inVersionsQueue, isEmbedded, lockVersions } from "./lock";
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

/**
 * Takes a version, or returns the one this (run, iteration, kind) already
 * has. null when mode is "changed" and nothing changed.
 */
/** Loose objects are packed after every this many versions of a project (store.ts pack). */
export const PACK_EVERY_VERSIONS = 100;

export async function takeVersion(db: Db, history: ProjectHistory, request: VersionRequest): Promise<Version | null> {
  // On PGlite a prune holds no transaction (it would stall the app's one connection): takes queue behind it here.
  const row = isEmbedded(db)
    ? await inVersionsQueue(request.projectId, () => takeVersionRow(db, history, request))
    : await takeVersionRow(db, history, request);
  // After the transaction: the pack holds no database lock. A retried take packs again, which git makes cheap.
  const packs = !!row && row.number % PACK_EVERY_VERSIONS === 0;
  if (packs) {
    await history.pack().catch((error: unknown) => {
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
  return row;
}

/**
 * One take's transaction in four round trips, not nine: the statements that do not wait on each other's answers
 * are sent together (postgres-js pipelines a transaction's queries; each still runs after the one before it, so
 * the reads see what the lock's previous holder committed). The row's id is made here, so the run event that
 * names it goes out with the row.
 */
function takeVersionRow(db: Db, history: ProjectHistory, request: VersionRequest): Promise<Version | null> {
  return db.transaction(async (tx) => {
    const [, , [existing], last] = await Promise.all([
      lockVersions(tx, request.projectId),
      // The event lock too, in the order every writer takes the two (versions, then events): the take's event is
      // written at its end, and asking for the lock there would cost a round trip of its own.
      request.runId ? lockProjectEvents(tx, request.projectId) : undefined,
      request.runId
        ? tx
            .select()
            .from(versions)
            .where(
              and(
                eq(versions.runId, request.runId),
                eq(versions.iteration, request.iteration),
                eq(versions.kind, request.kind),
              ),
            )
        : [],
      request.before ? undefined : latestVersion(tx, request.projectId),
    ]);
    if (existing) return existing;
    // A restore writes the workspace under the lock, so the newest version is read after it.
    const parent = request.before ? (await request.before(tx), await latestVersion(tx, request.projectId)) : last;
    const taken = await history.take({
      parent: parent ? { commit: parent.commitSha, tree: parent.treeSha } : null,
      message: request.message,
      mode: request.mode,
      date: new Date(),
      files: request.files,
    });
    if (!taken.commit || !taken.changes) {
      // Nothing new; the branch may still point at a commit a crash left behind.
      if (parent) await history.setHead(parent.commitSha);
      return null;
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
    return row;
  });
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
