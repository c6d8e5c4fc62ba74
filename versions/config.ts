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

/**
 * The histories this process has open, least recently used first. Each holds what makes its takes quick (the
 * newest tree, each file's stat data, a feed of the workspace's changes), hundreds of kilobytes for a large
 * workspace, so only the most recently used are kept; one dropped is opened again when asked for.
 */
const open = new Map<string, ProjectHistory>();
export const MAX_OPEN_HISTORIES = 64;

/** The project's history, or null when its provider (default: the configured one) keeps none. */
export function projectHistory(
  projectId: string,
  e: Env = env(),
  provider: string = e.SANDBOX_PROVIDER,
): ProjectHistory | null {
  if (provider !== "local") return null;
  const gitDir = historyPath(e.DYNO_DATA_DIR, projectId);
  let history = open.get(gitDir);
  if (history) {
    open.delete(gitDir);
    open.set(gitDir, history);
  } else {
    history = new ProjectHistory(
      gitDir,
      localWorkspacePath(e.DYNO_DATA_DIR, projectId),
      e.VERSIONS_MAX_FILE_SIZE,
      true,
      e.VERSIONS_MAX_HISTORY_SIZE,
    );
    open.set(gitDir, history);
    for (const [oldest, dropped] of open) {
      if (open.size <= MAX_OPEN_HISTORIES) break;
      // A take it is in the middle of still finishes; its feed stops, and the next take of that project is a full one.
      dropped.close();
      open.delete(oldest);
    }
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
