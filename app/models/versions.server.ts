/**
 * The builder's side of versions (decisions 026, 027): the History view's
 * list, a step's or a run's diff, an old version's files, restore, "Undo
 * this run" and a version's zip. Everything is read from the project's
 * history repository (versions/), never from the sandbox.
 */
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { pgSafeText } from "../../db/pg-safe";
import { gitRemotes, type Project } from "../../db/schema";
import { inngest } from "../../inngest/client";
import { exportRequested } from "../../inngest/events";
import { resolveWebhookTarget, WebhookUrlError } from "../../inngest/webhooks/address";
import { openSecret, sealSecret } from "../../inngest/webhooks/secret-box";
import { projectHistory, VERSIONS_UNAVAILABLE_ON_MODAL } from "../../versions/config";
import { ExportError, parseBranch, parseRemote } from "../../versions/export";
import { oldestKeptNumber, prunedMessage } from "../../versions/prune";
import {
  findVersion,
  listVersions,
  newestVersion,
  runVersions,
  versionBeforeRun,
  type ListedVersion,
} from "../../versions/queries";
import { latestVersion } from "../../versions/record";
import { restoreVersion, RestoreRefusedError } from "../../versions/restore";
import type { FileChange, ProjectHistory, TreeEntry } from "../../versions/store";
import { sessionSecret } from "../auth/secret.server";
import { env } from "../env.server";
import { highlight, languageFor, looksBinary, openProjectSandbox, type ProjectFile } from "./project-files.server";
import { isUuid } from "./runs.server";

export { RestoreRefusedError } from "../../versions/restore";
export { ExportError } from "../../versions/export";

type ProjectRef = Pick<Project, "id" | "sandboxProvider" | "sandboxId">;

/** Files of one diff that get their text rendered; the rest are named. */
export const MAX_DIFF_FILES = 40;
/** Bytes of one file's diff that are rendered; a longer one is named as too large. */
export const MAX_FILE_DIFF_BYTES = 256 * 1024;
export const MAX_VERSION_FILE_VIEW_BYTES = 256 * 1024;

export type VersionsView =
  | {
      available: true;
      versions: ListedVersion[];
      sizeBytes: number;
      /** VERSIONS_MAX_HISTORY_SIZE: over it, the oldest versions are pruned. */
      maxBytes: number;
      /** Versions numbered below this were pruned (their files are gone); null: none ever was. */
      oldestKept: number | null;
    }
  | { available: false; message: string; versions: []; sizeBytes: 0 };

function historyOf(project: ProjectRef): ProjectHistory | null {
  const e = env();
  return projectHistory(project.id, e, project.sandboxProvider ?? e.SANDBOX_PROVIDER);
}

async function versionOf(db: Db, project: ProjectRef, versionId: string) {
  return isUuid(versionId) ? findVersion(db, project.id, versionId) : undefined;
}

function notFound(what: string): Response {
  return new Response(`${what} not found`, { status: 404, statusText: "Not Found" });
}

/** 410: the version's row is listed, but the history bound pruned its files. */
function pruned(message: string): Response {
  return new Response(message, { status: 410, statusText: "Gone" });
}

/** The version, with its files: 404 when it is not the project's, 410 when it was pruned. */
async function keptVersion(db: Db, project: ProjectRef, versionId: string) {
  const history = historyOf(project);
  const version = await versionOf(db, project, versionId);
  if (!history || !version) throw notFound("Version");
  const oldestKept = await oldestKeptNumber(db, history, project.id);
  if (oldestKept !== null && version.number < oldestKept) throw pruned(prunedMessage(version.number, oldestKept));
  return { history, version, oldestKept };
}

/** The number of the oldest version whose files are kept; null when none was ever pruned (or there is no history). */
export async function oldestKeptVersion(db: Db, project: ProjectRef): Promise<number | null> {
  const history = historyOf(project);
  return history ? oldestKeptNumber(db, history, project.id) : null;
}

export async function projectVersions(db: Db, project: ProjectRef): Promise<VersionsView> {
  const history = historyOf(project);
  if (!history) return { available: false, message: VERSIONS_UNAVAILABLE_ON_MODAL, versions: [], sizeBytes: 0 };
  const [list, sizeBytes, oldestKept] = await Promise.all([
    listVersions(db, project.id),
    history.sizeBytes(),
    oldestKeptNumber(db, history, project.id),
  ]);
  return { available: true, versions: list, sizeBytes, maxBytes: history.maxHistoryBytes, oldestKept };
}

export interface FileDiff extends FileChange {
  /** The unified diff text; null when it is not rendered (see `note`). */
  diff: string | null;
  note?: string;
}

export interface DiffView {
  scope: "step" | "run";
  version: ListedVersion | { id: string; number: number };
  fromNumber: number | null;
  toNumber: number;
  files: FileDiff[];
}

/**
 * What a version changed from the one before it ("step"), or what its whole
 * run changed from the files the run started with ("run").
 */
export async function versionDiff(
  db: Db,
  project: ProjectRef,
  versionId: string,
  scope: "step" | "run" = "step",
): Promise<DiffView> {
  const { history, version, oldestKept } = await keptVersion(db, project, versionId);
  let from = version.parentSha;
  let fromNumber: number | null = version.number > 1 ? version.number - 1 : null;
  let to = version;
  if (scope === "run" && version.runId) {
    const own = await runVersions(db, version.runId);
    const base = await versionBeforeRun(db, version.runId);
    to = own.at(-1) ?? version;
    from = base?.commitSha ?? null;
    fromNumber = base?.number ?? null;
  }
  // The diff is against a version whose files are gone.
  if (oldestKept !== null && from !== null && fromNumber !== null && fromNumber < oldestKept)
    throw pruned(
      `${scope === "run" ? "This run's" : `Version ${version.number}'s`} changes cannot be shown: version ${fromNumber}, which they change, was pruned to keep the project's history under its size bound.`,
    );
  const changes = await history.changes(from, to.commitSha);
  const files: FileDiff[] = [];
  for (const [index, change] of changes.files.entries()) {
    if (change.linesAdded === null) {
      files.push({ ...change, diff: null, note: "Binary file: not shown." });
    } else if (index >= MAX_DIFF_FILES) {
      files.push({ ...change, diff: null, note: `Not shown: only the first ${MAX_DIFF_FILES} files are rendered.` });
    } else {
      const diff = await history.fileDiff(from, to.commitSha, change.path, MAX_FILE_DIFF_BYTES);
      files.push(
        diff === null
          ? { ...change, diff: null, note: "Too large to show (over 256 KiB of diff)." }
          : { ...change, diff },
      );
    }
  }
  return { scope, version: { id: version.id, number: version.number }, fromNumber, toNumber: to.number, files };
}

/** An old version's files, for a look before restoring it. */
export async function versionFiles(db: Db, project: ProjectRef, versionId: string): Promise<TreeEntry[]> {
  const { history, version } = await keptVersion(db, project, versionId);
  return history.files(version.commitSha);
}

/** One file of an old version, shaped like the Files view's so the same code view shows it. */
export async function versionFile(db: Db, project: ProjectRef, versionId: string, file: string): Promise<ProjectFile> {
  const { history, version } = await keptVersion(db, project, versionId);
  const entry = (await history.files(version.commitSha)).find((f) => f.path === file);
  if (!entry) throw notFound("File");
  const language = languageFor(file);
  const bytes = await history.readFile(version.commitSha, file, Number.MAX_SAFE_INTEGER);
  const head = (bytes ?? Buffer.alloc(0)).subarray(0, MAX_VERSION_FILE_VIEW_BYTES);
  const text = head.toString("utf8");
  const binary = head.includes(0) || looksBinary(text);
  return {
    path: file,
    bytes: entry.bytes,
    truncated: entry.bytes > MAX_VERSION_FILE_VIEW_BYTES,
    binary,
    language,
    html: binary ? null : highlight(text, language),
  };
}

export interface RestoreOutcome {
  restoredNumber: number;
  newNumber: number;
  /** The app process was running and is being restarted on the restored files. */
  appRestarted: boolean;
}

export async function restoreProjectVersion(db: Db, project: ProjectRef, versionId: string): Promise<RestoreOutcome> {
  if (!isUuid(versionId)) throw new RestoreRefusedError("That version does not exist in this project.");
  const history = historyOf(project);
  if (!history) throw new RestoreRefusedError(VERSIONS_UNAVAILABLE_ON_MODAL);
  const { target, restored } = await restoreVersion(db, history, { projectId: project.id, versionId });
  return { restoredNumber: target.number, newNumber: restored.number, appRestarted: await restartApp(project) };
}

/** "Undo this run": back to the files the run started from. */
export async function undoRun(db: Db, project: ProjectRef, runId: string): Promise<RestoreOutcome> {
  if (!isUuid(runId)) throw new RestoreRefusedError("That run does not exist in this project.");
  const base = await versionBeforeRun(db, runId);
  if (!base || base.projectId !== project.id)
    throw new RestoreRefusedError("That run changed no files: nothing to undo.");
  return restoreProjectVersion(db, project, base.id);
}

/** "Redo this run", once it was undone: back to the files the run left (its last version). */
export async function redoRun(db: Db, project: ProjectRef, runId: string): Promise<RestoreOutcome> {
  if (!isUuid(runId)) throw new RestoreRefusedError("That run does not exist in this project.");
  const last = (await runVersions(db, runId)).at(-1);
  if (!last || last.projectId !== project.id)
    throw new RestoreRefusedError("That run changed no files: nothing to redo.");
  return restoreProjectVersion(db, project, last.id);
}

/** The project's newest version and the number of the one it restored, for the stopped card's Undo or Redo. */
export function newestProjectVersion(db: Db, project: ProjectRef) {
  return newestVersion(db, project.id);
}

/** A running app serves the old files from memory (and its old dependencies): it starts again on the restored ones. */
async function restartApp(project: ProjectRef): Promise<boolean> {
  try {
    const sandbox = await openProjectSandbox(project);
    if (!sandbox) return false;
    const { state } = await sandbox.app.status();
    if (state !== "running" && state !== "starting") return false;
    void sandbox.app
      .restart()
      .catch((error: unknown) => console.warn(`restore: restarting the app of ${project.id} failed:`, error));
    return true;
  } catch (error) {
    console.warn(`restore: could not reach the app of ${project.id}:`, error);
    return false;
  }
}

export async function zipVersion(
  db: Db,
  project: ProjectRef,
  versionId: string,
): Promise<{ zip: Buffer; number: number }> {
  const { history, version } = await keptVersion(db, project, versionId);
  return { zip: await history.zip(version.commitSha), number: version.number };
}

export interface RemoteView {
  url: string;
  branch: string;
  hasToken: boolean;
  lastPushedAt: Date | null;
  lastPushedNumber: number | null;
  lastError: string | null;
  pushState: "pushing" | "pushed" | "failed" | null;
  /** The version the push in flight (or the last one asked for) ends at. */
  pushNumber: number | null;
}

export async function projectRemote(db: Db, project: ProjectRef): Promise<RemoteView | null> {
  const [row] = await db.select().from(gitRemotes).where(eq(gitRemotes.projectId, project.id));
  return row
    ? {
        url: row.url,
        branch: row.branch,
        hasToken: !!row.token,
        lastPushedAt: row.lastPushedAt,
        lastPushedNumber: row.lastPushedNumber,
        lastError: row.lastError,
        pushState: row.pushState,
        pushNumber: row.pushNumber,
      }
    : null;
}

/** A second export while one is pushing is refused (409), not queued: the builder sees one push at a time. */
export class ExportBusyError extends ExportError {
  constructor(number: number | null) {
    super(`A push${number ? ` of version ${number}` : ""} is already under way: wait for it to end, then push again.`);
    this.name = "ExportBusyError";
  }
}

/** A "pushing" row older than this is taken to be lost (its event never reached the engine) and may be asked again. */
export const EXPORT_STALE_MS = 30 * 60_000;

/**
 * Checks the remote and the token at once (a bad URL, a refused address, a
 * token that cannot be read, nothing to push: a clear error, nothing saved),
 * saves the remote (the token sealed, decision 027) with push_state
 * "pushing", and sends versions/export.requested; the export-history
 * function pushes and records the outcome on the row. A blank token keeps
 * the stored one. The token is in neither the event nor its id.
 */
export async function exportToGit(
  db: Db,
  project: ProjectRef,
  input: { url: string; branch: string; token: string },
): Promise<{ branch: string; number: number; state: "pushing" }> {
  const history = historyOf(project);
  if (!history) throw new ExportError(VERSIONS_UNAVAILABLE_ON_MODAL);
  const allowLocal = env().VERSIONS_EXPORT_ALLOW_LOCAL;
  const remote = parseRemote(input.url, { allowLocal });
  const branch = parseBranch(input.branch);
  if (remote.kind === "http") {
    try {
      await resolveWebhookTarget(remote.url, { allowPrivate: allowLocal });
    } catch (error) {
      if (error instanceof WebhookUrlError) {
        throw new ExportError(
          error.message
            .replace("Webhooks may not target", "Dyno may not push to")
            .replace("WEBHOOK_ALLOW_PRIVATE=1", "VERSIONS_EXPORT_ALLOW_LOCAL=1"),
        );
      }
      throw error;
    }
  }
  const [stored] = await db.select().from(gitRemotes).where(eq(gitRemotes.projectId, project.id));
  const secret = sessionSecret();
  const sealed = input.token.trim() ? sealSecret(input.token.trim(), secret) : (stored?.token ?? null);
  try {
    if (sealed) openSecret(sealed, secret);
  } catch {
    throw new ExportError("The stored token could not be read (SESSION_SECRET changed): enter it again.");
  }
  const latest = await latestVersion(db, project.id);
  if (!latest) throw new ExportError("There is nothing to push yet: versions are taken when a run changes files.");
  const requestedAt = new Date();
  const url = pgSafeText(input.url.trim());
  // Another remote or branch has none of what was pushed before: forget that push, or the panel would claim it.
  const elsewhere = stored && (stored.url !== url || stored.branch !== branch);
  const values = {
    url,
    branch,
    token: sealed,
    pushState: "pushing" as const,
    pushNumber: latest.number,
    pushRequestedAt: requestedAt,
    ...(elsewhere ? { lastPushedAt: null, lastPushedNumber: null, lastError: null } : {}),
  };
  // One statement decides between two exports at once: the row is taken only if no push holds it.
  const taken = await db
    .insert(gitRemotes)
    .values({ projectId: project.id, ...values })
    .onConflictDoUpdate({
      target: gitRemotes.projectId,
      set: values,
      setWhere: sql`${gitRemotes.pushState} is distinct from 'pushing' or ${gitRemotes.pushRequestedAt} is null or ${gitRemotes.pushRequestedAt} < ${new Date(requestedAt.getTime() - EXPORT_STALE_MS).toISOString()}::timestamptz`,
    })
    .returning({ projectId: gitRemotes.projectId });
  if (taken.length === 0) throw new ExportBusyError(stored?.pushNumber ?? null);
  try {
    await inngest.send(
      exportRequested.create(
        { projectId: project.id, requestedAt: requestedAt.toISOString(), number: latest.number },
        { id: `export-${project.id}-${requestedAt.getTime()}` },
      ),
    );
  } catch (error) {
    console.error(`export of ${project.id}: could not send versions/export.requested to the Inngest engine:`, error);
    const reason = "Could not reach the Inngest engine, so the push did not start. Retry once the engine is running.";
    await db
      .update(gitRemotes)
      .set({ pushState: "failed", lastError: reason })
      .where(and(eq(gitRemotes.projectId, project.id), eq(gitRemotes.pushRequestedAt, requestedAt)));
    throw new ExportError(reason);
  }
  return { branch, number: latest.number, state: "pushing" };
}
