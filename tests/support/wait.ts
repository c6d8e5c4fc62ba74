import type { Database } from "../../db/client";
import { subscribeRunEvents } from "../../db/run-events";
import type { RunEvent } from "../../db/schema";

/** Reads a project's run_events until `until` matches one, failing after `timeoutMs`. */
export async function waitForRunEvent(
  database: Database,
  {
    projectId,
    runId,
    until,
    timeoutMs = 30_000,
  }: { projectId: string; runId?: string; until: (row: RunEvent) => boolean; timeoutMs?: number },
): Promise<RunEvent> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    for await (const row of subscribeRunEvents(database, { projectId, runId, signal: controller.signal })) {
      if (until(row)) return row;
    }
    throw new Error(`no matching run event within ${timeoutMs} ms`);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

const FINISHED_EVENT_TYPES = new Set(["complete", "failed", "stopped"]);

/** Waits for a run's last event (complete, failed or stopped) and returns it. */
export function waitForRunToFinish(
  database: Database,
  run: { id: string; projectId: string },
  timeoutMs?: number,
): Promise<RunEvent> {
  return waitForRunEvent(database, {
    projectId: run.projectId,
    runId: run.id,
    until: (row) => FINISHED_EVENT_TYPES.has(row.type),
    timeoutMs,
  });
}
