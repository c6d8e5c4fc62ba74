/**
 * A run's statuses and the moves between them. Plain constants with no
 * database import, so the browser bundle can use them too.
 */
export const RUN_STATUSES = ["queued", "running", "stopping", "complete", "failed", "stopped"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const FINISHED_RUN_STATUSES: readonly RunStatus[] = ["complete", "failed", "stopped"];
export const ACTIVE_RUN_STATUSES: readonly RunStatus[] = ["queued", "running", "stopping"];

export function isFinished(status: RunStatus): boolean {
  return FINISHED_RUN_STATUSES.includes(status);
}

/**
 * Which statuses a run may move to from each status. A run only moves
 * forward: a late writer (a step finishing after a stop, a stop arriving
 * after completion) cannot undo a later state.
 */
const NEXT_STATUSES: Record<RunStatus, readonly RunStatus[]> = {
  queued: ["running", "stopping", "complete", "failed", "stopped"],
  running: ["stopping", "complete", "failed", "stopped"],
  stopping: ["complete", "failed", "stopped"],
  complete: [],
  failed: [],
  stopped: [],
};

export function canMoveRun(from: RunStatus, to: RunStatus): boolean {
  return from === to || NEXT_STATUSES[from].includes(to);
}
