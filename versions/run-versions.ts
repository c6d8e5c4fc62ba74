/**
 * Where a run takes its versions (decision 026): at its start (when the
 * files changed since the last version, e.g. by a restore), after each step
 * whose tool can change files (inside the step, so the engine memoizes it),
 * and at its end, whichever way it ends. A history that cannot be written
 * (a full disk, a broken repository) costs the version, not the run: the
 * error goes to the server log. Database errors still fail the step, which
 * is retried.
 */
import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { runs, versions, type Version, type VersionKind } from "../db/schema";
import { existingProjectHistory } from "./config";
import { isHistoryError, takeVersion, versionMessage, writeWithVersion, type VersionRequest } from "./record";
import type { ProjectHistory } from "./store";

/** Tools that only read: their steps never change files, so no version is looked for. */
const READ_ONLY_TOOLS = new Set(["read_file", "list_files", "todo_write", "app_logs", "reply_to_user"]);

export function toolMayChangeFiles(tool: string): boolean {
  return !READ_ONLY_TOOLS.has(tool);
}

/**
 * A run that took versions always closes with one (labelled with how it ended, even with nothing new since its
 * last step); one that changed nothing (an Ask, a run stopped before acting) adds a version only if the files
 * changed anyway.
 */
async function tookVersions(db: Db, runId: string): Promise<boolean> {
  const [own] = await db.select({ id: versions.id }).from(versions).where(eq(versions.runId, runId)).limit(1);
  return !!own;
}

/** Runs' prompts this process has read (most recent last): a run's prompt never changes, and each version names it. */
const prompts = new Map<string, string>();
const PROMPTS_KEPT = 200;

async function runPrompt(db: Db, runId: string): Promise<string | undefined> {
  const known = prompts.get(runId);
  if (known !== undefined) return known;
  const [row] = await db.select({ prompt: runs.prompt }).from(runs).where(eq(runs.id, runId));
  if (!row) return undefined;
  prompts.set(runId, row.prompt);
  if (prompts.size > PROMPTS_KEPT) prompts.delete(prompts.keys().next().value!);
  return row.prompt;
}

/** What a run's version of `part` is asked with. */
export interface RunVersionPart {
  kind: Exclude<VersionKind, "restore">;
  iteration: number;
  tool?: string;
  status?: string;
  /** The only files the step can have changed, when its tool says (write_file). */
  files?: string[];
}

async function runVersionRequest(
  db: Db,
  run: { id: string; projectId: string },
  part: RunVersionPart,
): Promise<VersionRequest> {
  const prompt = await runPrompt(db, run.id);
  return {
    projectId: run.projectId,
    runId: run.id,
    iteration: part.iteration,
    kind: part.kind,
    tool: part.tool ?? null,
    runStatus: part.status ?? null,
    files: part.files,
    mode: part.kind === "run-end" && (await tookVersions(db, run.id)) ? "commit" : "changed",
    message: versionMessage({ runId: run.id, prompt, ...part }),
  };
}

/** Where the project's history is: the agent's own configuration, else the process's. */
type HistoryOf = (projectId: string) => ProjectHistory | null;
const processHistory: HistoryOf = (projectId) => existingProjectHistory(projectId);

export async function takeRunVersion(
  db: Db,
  run: { id: string; projectId: string },
  part: RunVersionPart,
  historyOf: HistoryOf = processHistory,
): Promise<Version | null> {
  const history = historyOf(run.projectId);
  if (!history) return null;
  try {
    return await takeVersion(db, history, await runVersionRequest(db, run, part));
  } catch (error) {
    if (!isHistoryError(error)) throw error;
    console.warn(`version (${part.kind} ${part.iteration}) of run ${run.id} not taken: ${String(error)}`);
    return null;
  }
}

/**
 * Runs `write` (a step saving its result) and takes the run's version of `part` in the same transaction
 * (record.ts writeWithVersion); with no history, `write` alone in a transaction.
 */
export async function writeWithRunVersion<T>(
  db: Db,
  run: { id: string; projectId: string },
  part: RunVersionPart,
  historyOf: HistoryOf,
  write: (tx: Parameters<Parameters<Db["transaction"]>[0]>[0]) => Promise<T>,
): Promise<{ value: T; version: Version | null }> {
  const history = historyOf(run.projectId);
  if (!history) return { value: await db.transaction(write), version: null };
  const { value, version } = await writeWithVersion(db, history, await runVersionRequest(db, run, part), write);
  return { value: value as T, version };
}
