/**
 * Which history a project has. Only the local provider keeps one: its
 * workspace is a folder on this machine that git can use as a work tree. A
 * Modal workspace lives in the remote sandbox, so its projects have no
 * versions (decision 026) and say so.
 */
import { existsSync } from "node:fs";
import { env, type Env } from "../app/env.server";
import { localWorkspacePath } from "../sandbox/local";
import { historyPath, ProjectHistory } from "./store";

export const VERSIONS_UNAVAILABLE_ON_MODAL =
  "Versions are kept for local workspaces only: this project's files live in a Modal sandbox, which Dyno's history cannot read.";

const open = new Map<string, ProjectHistory>();

/** The project's history, or null when its provider (default: the configured one) keeps none. */
export function projectHistory(
  projectId: string,
  e: Env = env(),
  provider: string = e.SANDBOX_PROVIDER,
): ProjectHistory | null {
  if (provider !== "local") return null;
  const gitDir = historyPath(e.DYNO_DATA_DIR, projectId);
  let history = open.get(gitDir);
  if (!history) {
    history = new ProjectHistory(
      gitDir,
      localWorkspacePath(e.DYNO_DATA_DIR, projectId),
      e.VERSIONS_MAX_FILE_SIZE,
      true,
      e.VERSIONS_MAX_HISTORY_SIZE,
    );
    open.set(gitDir, history);
  }
  return history;
}

/** The history, when the project's workspace exists (a project no run has touched has nothing to keep). */
export function existingProjectHistory(projectId: string, e: Env = env()): ProjectHistory | null {
  const history = projectHistory(projectId, e);
  return history && existsSync(history.workTree) ? history : null;
}

/** Forgets a deleted project's history (the folder is removed by the caller). */
export function forgetProjectHistory(projectId: string, e: Env = env()): void {
  const gitDir = historyPath(e.DYNO_DATA_DIR, projectId);
  open.get(gitDir)?.close();
  open.delete(gitDir);
}
