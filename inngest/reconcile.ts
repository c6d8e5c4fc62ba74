/**
 * Reconciles the app's active runs with the engine, so that a run the engine
 * lost does not stay `queued`, `running` or `stopping` forever (and hold its
 * project's prompt box shut). Run at startup, every RUN_RECONCILE_INTERVAL,
 * and by Stop for the run it stops.
 *
 * A run is ended only on the engine's positive word, and never while the
 * engine cannot answer:
 * - the engine has no event for it (restarted with empty state): failed;
 * - the engine lists it as running but has nothing queued for it, on two
 *   looks (restarted with its history but not its queue): failed;
 * - the engine failed it (its failure handler could not record it): failed;
 * - the engine cancelled it (its cancel handler could not record it): stopped,
 *   or failed as timed out, exactly as that handler would have;
 * - the engine still lists it but it has run past AGENT_RUN_TIMEOUT (the
 *   engine would have cancelled it; one that kept its history but lost its
 *   queue never will): failed.
 * Each verdict waits RUN_RECONCILE_GRACE: a run younger than that may not have
 * reached the engine yet, and a handler may still be recording an end.
 * A run of any age with a retry queued at the engine gets a `resuming` event.
 */
import { and, inArray } from "drizzle-orm";
import { durationMs, env } from "../app/env.server";
import type { Db } from "../db/client";
import { ACTIVE_RUN_STATUSES } from "../db/run-status";
import { runs, type Run } from "../db/schema";
import { createEngineApi, engineApiOptions, type EngineApi, type EngineRunState } from "./engine-api";
import { failRun, markRunCancelled, markRunResuming } from "./run-lifecycle";

export const LOST_RUN_REASONS = {
  unknown:
    "The Inngest engine no longer knows this run (it was restarted or reset), so it cannot finish. Retry to run the prompt again.",
  orphaned:
    "The Inngest engine lost this run's queue (it restarted without its state), so it cannot finish. Retry to run the prompt again.",
  failed:
    "The Inngest engine gave up on this run and its failure could not be recorded. Retry to run the prompt again.",
  overdue: (timeout: string) =>
    `The run went over its time limit (${timeout}) and the Inngest engine did not end it. Retry to run the prompt again.`,
} as const;

/** How far before the oldest run the engine's events are searched (clock differences, send delays). */
const EVENT_WINDOW_SLACK_MS = 60 * 60_000;

export interface ReconcileOptions {
  engine?: EngineApi;
  /** Only these runs (Stop); default: every active run. */
  runIds?: string[];
  graceMs?: number;
  timeout?: string;
  now?: Date;
}

/** How a lost run was ended, and why. */
export interface Ending {
  as: "failed" | "stopped";
  why: keyof typeof LOST_RUN_REASONS | "cancelled";
}

export interface ReconcileResult {
  /** Runs the engine could not vouch for, with how each was ended. */
  ended: (Ending & { runId: string })[];
  /** Active runs old enough to be judged. */
  checked: number;
  /** Runs with a retry queued at the engine: a `resuming` event was recorded. */
  resuming: string[];
}

/** One pass. Throws EngineApiError (nothing changed) when the engine cannot answer. */
export async function reconcileRuns(db: Db, options: ReconcileOptions = {}): Promise<ReconcileResult> {
  const config = env();
  const {
    engine = createEngineApi(engineApiOptions(config)),
    runIds,
    graceMs = durationMs(config.RUN_RECONCILE_GRACE),
    timeout = config.AGENT_RUN_TIMEOUT,
    now = new Date(),
  } = options;
  if (runIds?.length === 0) return { ended: [], checked: 0, resuming: [] };
  const settled = new Date(now.getTime() - graceMs);
  const active = await db
    .select()
    .from(runs)
    .where(and(inArray(runs.status, [...ACTIVE_RUN_STATUSES]), runIds ? inArray(runs.id, runIds) : undefined));
  if (active.length === 0) return { ended: [], checked: 0, resuming: [] };

  const oldest = Math.min(...active.map((r) => r.createdAt.getTime()));
  const states = await engine.runStates(
    active.map((r) => r.id),
    new Date(oldest - EVENT_WINDOW_SLACK_MS),
  );
  const result: ReconcileResult = { ended: [], checked: 0, resuming: [] };
  for (const run of active) {
    const state = states.get(run.id);
    if (!state) continue;
    if (state.kind === "active" && state.retry) {
      // The card says so while the engine waits to call again (15-45 s after an app crash), not only once it does.
      await markRunResuming(db, run.id, { attempt: state.retry.attempt });
      result.resuming.push(run.id);
    }
    // Too young to judge: its event may still be on its way to the engine.
    if (run.createdAt >= settled) continue;
    result.checked++;
    const ended = await endIfLost(db, run, state, { settled, timeout, now, graceMs });
    if (ended) result.ended.push({ runId: run.id, ...ended });
  }
  return result;
}

async function endIfLost(
  db: Db,
  run: Run,
  state: EngineRunState,
  { settled, timeout, now, graceMs }: { settled: Date; timeout: string; now: Date; graceMs: number },
): Promise<Ending | undefined> {
  switch (state.kind) {
    case "unknown":
      await failRun(db, run.id, LOST_RUN_REASONS.unknown);
      return { as: "failed", why: "unknown" };
    case "orphaned":
      await failRun(db, run.id, LOST_RUN_REASONS.orphaned);
      return { as: "failed", why: "orphaned" };
    case "ended":
      if (state.endedAt >= settled) return undefined;
      if (state.status === "Cancelled") {
        await markRunCancelled(db, run.id, { timeout, timeoutMs: durationMs(timeout), now });
        return { as: "stopped", why: "cancelled" };
      }
      await failRun(db, run.id, LOST_RUN_REASONS.failed);
      return { as: "failed", why: "failed" };
    case "active": {
      const started = run.startedAt?.getTime();
      if (started === undefined || now.getTime() - started < durationMs(timeout) + graceMs) return undefined;
      await failRun(db, run.id, LOST_RUN_REASONS.overdue(timeout));
      return { as: "failed", why: "overdue" };
    }
  }
}

export interface RunReconciler {
  /** The pass in progress, or a new one (tests, Stop). */
  runOnce(): Promise<ReconcileResult | undefined>;
  stop(): Promise<void>;
}

/**
 * Reconciles at once, then every `intervalMs` (0: only at start). A pass that
 * fails (engine or database unreachable) is logged and tried at the next tick.
 */
export function startRunReconciler(
  db: Db,
  { intervalMs = durationMs(env().RUN_RECONCILE_INTERVAL) } = {},
): RunReconciler {
  let running: Promise<ReconcileResult | undefined> | undefined;
  let stopped = false;
  const runOnce = () =>
    (running ??= reconcileRuns(db)
      .then(
        (result) => {
          for (const e of result.ended) console.warn(`reconcile: run ${e.runId} ended as ${e.as} (${e.why})`);
          return result;
        },
        (error: unknown) => {
          if (!stopped) console.warn(`reconcile: skipped, ${error instanceof Error ? error.message : String(error)}`);
          return undefined;
        },
      )
      .finally(() => (running = undefined)));
  void runOnce();
  const timer = intervalMs > 0 ? setInterval(() => void runOnce(), intervalMs) : undefined;
  timer?.unref();
  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
