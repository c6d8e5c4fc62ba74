/**
 * The writes that move a run through its life, each one a run_events row
 * plus the matching runs snapshot (db/run-events.ts). Called from inside
 * steps, so every write is idempotent: a re-executed step rewrites its own
 * row (dedupeKey) instead of adding one, and status only moves forward.
 */
import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { pgSafeText } from "../db/pg-safe";
import { appendRunEvent } from "../db/run-events";
import { canMoveRun } from "../db/run-status";
import { stoppedAfter } from "../db/run-wording";
import { messages, runs, type Run } from "../db/schema";
import { takeRunVersion } from "../versions/run-versions";
import { saveEntry } from "./agent/entries";
import { announceRunEnded } from "./webhooks/announce";

/** Runs whose model spec is a bundled replay, not a real model (the offline demo, tests). */
export function isReplay(model: string): boolean {
  return model.startsWith("replay/");
}

export class RunNotFoundError extends Error {
  constructor(runId: string) {
    super(`Run ${runId} does not exist`);
    this.name = "RunNotFoundError";
  }
}

async function loadRun(db: Db, runId: string): Promise<Run> {
  const [run] = await db.select().from(runs).where(eq(runs.id, runId));
  if (!run) throw new RunNotFoundError(runId);
  return run;
}

export type StartedRun = Pick<Run, "id" | "projectId" | "mode" | "model" | "maxIterations" | "status"> & {
  /** False when the run was stopped or finished before it started: run no iteration. */
  active: boolean;
};

export async function markRunStarted(db: Db, runId: string): Promise<StartedRun> {
  const run = await loadRun(db, runId);
  const event = await appendRunEvent(
    db,
    {
      runId,
      projectId: run.projectId,
      type: "starting",
      dedupeKey: "start",
      data: { mode: run.mode, model: run.model, replay: isReplay(run.model), maxIterations: run.maxIterations },
    },
    { status: "running", startedAt: run.startedAt ?? new Date() },
  );
  // Refused: the status moved on since it was read (a stop can land in between), so say what it is now.
  const status = event ? "running" : (await loadRun(db, runId)).status;
  return {
    id: run.id,
    projectId: run.projectId,
    mode: run.mode,
    model: run.model,
    maxIterations: run.maxIterations,
    status,
    active: event !== null,
  };
}

/**
 * Records the start of an iteration (the model is thinking), only while the
 * run is `running`: once a stop is recorded, no later iteration starts, even
 * before the engine's cancel lands. Returns false when it must not run.
 */
export async function beginIteration(
  db: Db,
  run: Pick<Run, "id" | "projectId" | "maxIterations">,
  iteration: number,
): Promise<boolean> {
  const event = await appendRunEvent(
    db,
    {
      runId: run.id,
      projectId: run.projectId,
      type: "thinking",
      dedupeKey: `think-${iteration}`,
      data: { iteration, of: run.maxIterations },
      onlyIfStatus: ["running"],
    },
    { iteration, currentTool: null, toolDescription: null },
  );
  return event !== null;
}

/**
 * Moves a run to a finished status once: the closing event, the snapshot and
 * the transcript message in one transaction. A repeat (re-executed step, or
 * both the run and the cancel handler ending it) rewrites the same rows.
 */
async function endRun(
  db: Db,
  runId: string,
  end: (run: Run) => {
    status: "complete" | "failed" | "stopped";
    data: Record<string, unknown>;
    error?: string;
    message: { role: "assistant" | "system"; content: string };
    /** Told to the model in the next run's conversation. */
    notice?: { kind: "stopped"; message: string };
  },
): Promise<void> {
  const run = await loadRun(db, runId);
  const { status, data, error, message, notice } = end(run);
  // The files as the run left them, whichever way it ended (a stopped run's partial work included); once per run.
  if (run.startedAt && canMoveRun(run.status, status))
    await takeRunVersion(db, run, { kind: "run-end", iteration: 0, status });
  const ended = await db.transaction(async (tx) => {
    const event = await appendRunEvent(
      tx,
      { runId, projectId: run.projectId, type: status, dedupeKey: status, data },
      { status, error, finishedAt: new Date(), currentTool: null, toolDescription: null },
    );
    if (event) {
      const content = pgSafeText(message.content);
      await tx
        .insert(messages)
        .values({ projectId: run.projectId, runId, role: message.role, content })
        .onConflictDoUpdate({ target: [messages.runId, messages.role], set: { content } });
      if (notice) {
        await saveEntry(tx, {
          runId,
          projectId: run.projectId,
          iteration: run.iteration,
          kind: notice.kind,
          payload: { message: notice.message },
        });
      }
    }
    return event !== null;
  });
  // After the commit, and only for the end that was recorded (a repeat sends the same event id again).
  if (ended) await announceRunEnded(db, run, status);
}

export function completeRun(db: Db, runId: string, reply: string): Promise<void> {
  return endRun(db, runId, () => ({
    status: "complete",
    data: { reply },
    message: { role: "assistant", content: reply },
  }));
}

/** Marks a run failed (once): `onFailure`, a failed send, a timeout. */
export function failRun(db: Db, runId: string, reason: string): Promise<void> {
  return endRun(db, runId, () => ({
    status: "failed",
    data: { error: reason },
    error: reason,
    message: { role: "system", content: `The run failed: ${reason}` },
  }));
}

/**
 * Records that a step is being run again after it was interrupted (the app
 * crashed or restarted, the database went away): the engine retries it after
 * a delay, and the live card says so instead of looking frozen. `attempt`
 * counts from 1 (the first retry is attempt 2). Once per step and attempt;
 * the reconciler writes one without a step when it sees the retry queued.
 */
export async function markRunResuming(db: Db, runId: string, { step, attempt }: { step?: string; attempt: number }) {
  const run = await loadRun(db, runId);
  return appendRunEvent(db, {
    runId,
    projectId: run.projectId,
    type: "resuming",
    // Without a step: the engine's queued retry, seen by the reconciler before the step runs again.
    dedupeKey: `resuming-${step ?? "queued"}-${attempt}`,
    data: step ? { step, attempt } : { attempt },
    onlyIfStatus: ["queued", "running", "stopping"],
  });
}

/**
 * Records that a stop was asked for, once: null when the run had already
 * finished or a stop was already recorded (two stops at once write one row).
 */
export async function markRunStopping(db: Db, run: Pick<Run, "id" | "projectId">) {
  return appendRunEvent(
    db,
    { runId: run.id, projectId: run.projectId, type: "stopping", onlyIfStatus: ["queued", "running"] },
    { status: "stopping" },
  );
}

/**
 * The engine cancelled the run: either an `agent/stop` (from the app's Stop,
 * or sent straight to the engine) or the run-duration limit
 * (`timeouts.finish`). The cancelled event does not say which, so a run that
 * was not being stopped and has been going for its whole time limit counts as
 * timed out, a failure; every other cancel is a stop.
 */
export async function markRunCancelled(
  db: Db,
  runId: string,
  { timeout, timeoutMs, now = new Date() }: { timeout: string; timeoutMs: number; now?: Date },
): Promise<void> {
  const run = await loadRun(db, runId);
  const ranFor = run.startedAt ? now.getTime() - run.startedAt.getTime() : 0;
  // The engine's clock starts at its first request, a little before `start` writes startedAt.
  const timedOut = run.status !== "stopping" && ranFor >= timeoutMs - 1_000;
  if (timedOut) await failRun(db, runId, `The run went over its time limit (${timeout}) and was cancelled.`);
  else await markRunStopped(db, runId);
}

/** Ends a run whose stop was asked for; safe to call from both the run and the cancel handler. */
export function markRunStopped(db: Db, runId: string): Promise<void> {
  return endRun(db, runId, (run) => ({
    status: "stopped",
    data: { iteration: run.iteration },
    message: { role: "system", content: `${stoppedAfter(run.iteration)}.` },
    notice: {
      kind: "stopped",
      message:
        run.iteration === 0
          ? "[The builder stopped that run before its first iteration: nothing ran.]"
          : `[The builder stopped that run during iteration ${run.iteration}. ` +
            "An action in flight was cancelled (a running command was killed); nothing after it ran. " +
            "Check the workspace before you continue.]",
    },
  }));
}
