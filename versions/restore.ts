/**
 * Restoring a version (decision 027): only while no run is queued or
 * active, the workspace becomes exactly that version's files (node_modules,
 * build output and skipped files left alone), the restore is itself a new
 * version (so it can be undone by restoring the one before it), and the
 * next run's conversation is told, so the agent works from the files as
 * they are instead of fighting the change.
 */
import { and, desc, eq, inArray, isNotNull } from "drizzle-orm";
import { saveEntry } from "../db/agent-entries";
import type { Db } from "../db/client";
import { ACTIVE_RUN_STATUSES } from "../db/run-status";
import { runs, versions, type Version } from "../db/schema";
import { oldestKeptNumber, prunedMessage } from "./prune";
import { takeVersion, versionMessage } from "./record";
import type { ProjectHistory } from "./store";

/** Said instead of restoring while a run could still write the files. */
export class RestoreRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RestoreRefusedError";
  }
}

/** Restore notices sit after the run they follow, keyed past any real iteration. */
const RESTORE_NOTICE_ITERATION = 1_000_000;

export function restoreNotice(version: Pick<Version, "number" | "createdAt">): string {
  return (
    `[The builder restored version ${version.number} (taken ${version.createdAt.toISOString()}) after that run: ` +
    "the workspace now holds that version's files, and changes made after it are undone. " +
    "Work from the files as they are now; do not redo the undone changes unless asked.]"
  );
}

export async function restoreVersion(
  db: Db,
  history: ProjectHistory,
  { projectId, versionId }: { projectId: string; versionId: string },
): Promise<{ target: Version; restored: Version }> {
  const [active] = await db
    .select({ id: runs.id, status: runs.status })
    .from(runs)
    .where(and(eq(runs.projectId, projectId), inArray(runs.status, [...ACTIVE_RUN_STATUSES])))
    .limit(1);
  if (active) {
    throw new RestoreRefusedError(`A run is ${active.status}: stop it or let it finish, then restore the version.`);
  }
  const [target] = await db
    .select()
    .from(versions)
    .where(and(eq(versions.id, versionId), eq(versions.projectId, projectId)));
  if (!target) throw new RestoreRefusedError("That version does not exist in this project.");

  const restored = await takeVersion(db, history, {
    projectId,
    runId: null,
    iteration: 0,
    kind: "restore",
    mode: "commit",
    restoredFrom: target.id,
    message: versionMessage({ runId: null, kind: "restore", restoredNumber: target.number }),
    before: async (tx) => {
      // Under the versions lock: no prune can drop the target between this check and the restore.
      const oldest = await oldestKeptNumber(tx, history, projectId);
      if (oldest !== null && target.number < oldest)
        throw new RestoreRefusedError(prunedMessage(target.number, oldest));
      await history.restore(target.commitSha);
    },
  });
  if (!restored) throw new Error("a restore always records a version");

  const [lastRun] = await db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.projectId, projectId), isNotNull(runs.startedAt)))
    .orderBy(desc(runs.startedAt))
    .limit(1);
  if (lastRun) {
    await saveEntry(db, {
      runId: lastRun.id,
      projectId,
      iteration: RESTORE_NOTICE_ITERATION + restored.number,
      kind: "restored",
      payload: { message: restoreNotice(target), versionId: target.id, number: target.number },
    });
  }
  return { target, restored };
}
