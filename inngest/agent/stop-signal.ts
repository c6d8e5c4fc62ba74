/**
 * Inngest cancels a run only between steps. A step in flight (a slow model
 * call, a long command) must hear the stop itself: this watches the run's
 * events (LISTEN/NOTIFY, or in process with PGlite) and aborts a signal as
 * soon as `stopping` is recorded.
 */
import type { Database } from "../../db/client";
import { subscribeRunEvents } from "../../db/run-events";

export interface StopWatch {
  /** Aborts when a stop is recorded for the run (reason: "stopped"). */
  signal: AbortSignal;
  /** Stop watching; call when the step ends. */
  close(): void;
}

export const STOP_REASON = "stopped";
const STOP_EVENTS = ["stopping", "stopped"] as const;

export function watchForStop(database: Database, run: { id: string; projectId: string }): StopWatch {
  const stopped = new AbortController();
  const watching = new AbortController();
  void (async () => {
    try {
      for await (const _stop of subscribeRunEvents(database, {
        projectId: run.projectId,
        runId: run.id,
        // Only the rows it waits for: reading the run's whole history at every step grew with the run.
        types: STOP_EVENTS,
        signal: watching.signal,
        // A missed notification must not leave a command running for long.
        pollIntervalMs: 2_000,
      })) {
        stopped.abort(STOP_REASON);
        return;
      }
    } catch (error) {
      // The database went away (shutdown): the engine's cancel still ends the run.
      if (!watching.signal.aborted) console.warn(`stop watch for run ${run.id} ended: ${String(error)}`);
    }
  })();
  return {
    signal: stopped.signal,
    close: () => watching.abort(),
  };
}

/** True when the signal was aborted by a stop (not by a timeout). */
export function stoppedBy(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason === STOP_REASON;
}
