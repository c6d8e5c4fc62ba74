/**
 * Inngest cancels a run only between steps. A step in flight (a slow model
 * call, a long command) must hear the stop itself: this watches the run's
 * notifications (LISTEN/NOTIFY, or in process with PGlite; each carries the
 * row's type) and aborts a signal as soon as `stopping` or `stopped` is
 * recorded. It reads nothing per step: the step checks the run's status
 * itself after starting the watch (beginIteration, act's status check), and
 * one query every couple of seconds for all watched runs of the process is
 * the safety net for a notification that was lost or came before LISTEN was up.
 */
import { inArray } from "drizzle-orm";
import type { Database } from "../../db/client";
import { runEventsBus } from "../../db/run-events";
import { runs } from "../../db/schema";

export interface StopWatch {
  /** Aborts when a stop is recorded for the run (reason: "stopped"). */
  signal: AbortSignal;
  /** Stop watching; call when the step ends. */
  close(): void;
}

export const STOP_REASON = "stopped";
const STOP_TYPES: readonly string[] = ["stopping", "stopped"];
/** How late a stop whose notification was lost is heard, at worst. */
const SAFETY_POLL_MS = 2_000;

/** The watches of one database in this process, and the one poll that checks all of them. */
class StopWatches {
  private readonly watched = new Map<string, Set<AbortController>>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly database: Database) {}

  add(runId: string, controller: AbortController) {
    let controllers = this.watched.get(runId);
    if (!controllers) this.watched.set(runId, (controllers = new Set()));
    controllers.add(controller);
    this.schedule();
  }

  remove(runId: string, controller: AbortController) {
    const controllers = this.watched.get(runId);
    controllers?.delete(controller);
    if (controllers?.size === 0) this.watched.delete(runId);
    if (this.watched.size === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  stop(runId: string) {
    for (const controller of this.watched.get(runId) ?? []) controller.abort(STOP_REASON);
  }

  /** Reads the status of the given runs (all watched when omitted) and stops those that are stopping or stopped. */
  async check(runIds: string[] = [...this.watched.keys()]) {
    if (runIds.length === 0) return;
    try {
      const rows = await this.database.db
        .select({ id: runs.id, status: runs.status })
        .from(runs)
        .where(inArray(runs.id, runIds));
      for (const row of rows) if (STOP_TYPES.includes(row.status)) this.stop(row.id);
    } catch (error) {
      // The database went away (shutdown): the engine's cancel still ends the run.
      console.warn(`stop watch: status check failed: ${String(error)}`);
    }
  }

  private schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.check().finally(() => {
        if (this.watched.size > 0) this.schedule();
      });
    }, SAFETY_POLL_MS);
    this.timer.unref?.();
  }
}

const registries = new WeakMap<Database, StopWatches>();

function stopWatches(database: Database): StopWatches {
  let registry = registries.get(database);
  if (!registry) registries.set(database, (registry = new StopWatches(database)));
  return registry;
}

/**
 * Starts watching for a stop of the run. Start it before checking that the run still runs: a stop recorded after
 * that check is heard at once (by its notification), one recorded before it is the check's to see.
 */
export function watchForStop(database: Database, run: { id: string; projectId: string }): StopWatch {
  const stopped = new AbortController();
  const registry = stopWatches(database);
  registry.add(run.id, stopped);
  const unlisten = runEventsBus(database).onRun(run.id, (type) => {
    if (type === undefined) void registry.check([run.id]);
    else if (STOP_TYPES.includes(type)) stopped.abort(STOP_REASON);
  });
  return {
    signal: stopped.signal,
    close: () => {
      unlisten();
      registry.remove(run.id, stopped);
    },
  };
}

/** True when the signal was aborted by a stop (not by a timeout). */
export function stoppedBy(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason === STOP_REASON;
}
