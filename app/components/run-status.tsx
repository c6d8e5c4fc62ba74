import type { RunStatus } from "../../db/run-status";

const LABELS: Record<RunStatus, string> = {
  queued: "Queued",
  running: "Running",
  stopping: "Stopping…",
  complete: "Complete",
  failed: "Failed",
  stopped: "Stopped",
};

export function runStatusLabel(status: RunStatus): string {
  return LABELS[status];
}

/** A run's status as a coloured pill; the text carries the meaning, the colour only helps. */
export function RunStatusBadge({ status }: { status: RunStatus }) {
  return <span className={`badge badge-${status}`}>{LABELS[status]}</span>;
}
