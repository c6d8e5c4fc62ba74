/**
 * Starting and stopping runs on behalf of a builder: the write the chat
 * action makes before it answers, and the events it sends the engine.
 */
import { randomUUID } from "node:crypto";
import { and, eq, inArray } from "drizzle-orm";
import type { Db } from "../../db/client";
import { pgSafeText } from "../../db/pg-safe";
import { appendRunEvent, lockProjectEvents } from "../../db/run-events";
import { ACTIVE_RUN_STATUSES } from "../../db/run-status";
import { messages, projects, runs, type Run } from "../../db/schema";
import { builderTokensToday, dailyBudgetSpent } from "../../inngest/agent/budget";
import { DEMOS, type DemoName } from "../../inngest/agent/demo";
import { saveEntry } from "../../inngest/agent/entries";
import { supportsVision, VisionUnsupportedError } from "../../inngest/agent/model/vision";
import { agentPrompt, agentStop, inngest } from "../../inngest/client";
import { reconcileRuns } from "../../inngest/reconcile";
import { failRun, markRunStopping } from "../../inngest/run-lifecycle";
import { DEMO_SCRIPT } from "../../model-replay/script";
import { env } from "../env.server";
import { demoUnavailableReason, DemoUnavailableError } from "./demo.server";
import { promptModelChoice, type RunModelChoice } from "./model-keys.server";
import { PromptInput } from "./prompt";
import { saveImages, type PromptImageUpload } from "./prompt-images.server";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Ids come from URLs and forms: anything that is not a uuid cannot name a row (and must not reach SQL as one). */
export const isUuid = (id: string) => UUID.test(id);

/** A run or project that does not exist or belongs to someone else: both answer 404. */
export class NotFoundError extends Error {
  readonly status = 404;
}

/** The engine could not be reached: the run is marked failed, the prompt kept. */
export class EngineUnavailableError extends Error {
  readonly status = 503;
}

export { ModelNotConfiguredError } from "../../inngest/agent/model/config";
export { DemoUnavailableError } from "./demo.server";
export { VisionUnsupportedError } from "../../inngest/agent/model/vision";

/** A prompt from a builder whose runs used today's token budget is refused before anything is written. */
export class DailyBudgetSpentError extends Error {
  readonly status = 429;
}

/** A second prompt while one runs is refused: the page says so and keeps the box disabled until the run ends. */
export class RunActiveError extends Error {
  readonly status = 409;
  constructor() {
    super("The agent is still working on your last prompt. Wait for it to finish, or stop it first.");
  }
}

export interface PromptRequest {
  userId: string;
  projectId: string;
  input: PromptInput;
  /**
   * Overrides the project's model (else AGENT_MODEL) for this run: a spec ("replay/<script>" for the offline demo),
   * or a run's recorded choice (Retry), keys and fallback included (decision 034).
   */
  model?: string | RunModelChoice;
  /**
   * Refuse (RunActiveError) while another run of the project is queued or
   * running, instead of queueing behind it. Checked under a lock on the
   * project's row, so of two prompts sent at once only one is recorded.
   */
  onlyWhenIdle?: boolean;
  /** Images attached to the prompt (checked already: prompt-images.server.ts); stored with its message. */
  images?: readonly PromptImageUpload[];
  /** Runs in the prompt's transaction before anything is written (a steering message marked resent); throw to refuse. */
  beforeRecord?: (tx: Transaction) => Promise<void>;
}

type Transaction = Parameters<Parameters<Db["transaction"]>[0]>[0];

/**
 * Records a prompt: the queued run, the user message, the model's first
 * conversation entry and the `queued` event, in one transaction. With no
 * model configured the prompt is refused at once (ModelNotConfiguredError
 * names the variables to set) and nothing is written.
 */
export async function recordPrompt(
  db: Db,
  { userId, projectId, input, model, onlyWhenIdle = false, beforeRecord, images = [] }: PromptRequest,
): Promise<Run> {
  if (!isUuid(projectId)) throw new NotFoundError("Project not found");
  const parsed = PromptInput.parse(input);
  const { mode, maxIterations } = parsed;
  // A pasted NUL or lone surrogate would fail the insert (Postgres 22P05); it is kept as U+FFFD instead.
  const prompt = pgSafeText(parsed.prompt);
  const choice = await promptModelChoice(db, { userId, projectId, requested: model });
  const modelSpec = choice.model;
  // Refused before anything is written: the builder keeps the text and is told which model cannot read images.
  if (images.length > 0 && !supportsVision(modelSpec)) throw new VisionUnsupportedError(modelSpec);
  // A fallback may answer any step of the run: it gets the images too, so it must read them.
  if (images.length > 0 && choice.fallbackModel && !supportsVision(choice.fallbackModel))
    throw new VisionUnsupportedError(choice.fallbackModel, true);
  const stored = images.map((image) => ({ ...image, id: randomUUID() }));
  const refs = stored.map(({ id, name, mediaType, size, sha256 }) => ({ id, name, mediaType, size, sha256 }));
  return db.transaction(async (tx) => {
    // Before the project's row: the order every writer keeps (db/run-events.ts).
    await lockProjectEvents(tx, projectId);
    const ownProject = tx
      .select({ id: projects.id })
      .from(projects)
      .where(and(eq(projects.id, projectId), eq(projects.userId, userId)));
    const [project] = onlyWhenIdle ? await ownProject.for("update") : await ownProject;
    if (!project) throw new NotFoundError("Project not found");
    if (onlyWhenIdle) {
      const [active] = await tx
        .select({ id: runs.id })
        .from(runs)
        .where(and(eq(runs.projectId, projectId), inArray(runs.status, [...ACTIVE_RUN_STATUSES])))
        .limit(1);
      if (active) throw new RunActiveError();
    }
    // A run started over the day's budget would only fail at its first step; a replay (the demo) costs nothing.
    const { AGENT_DAILY_TOKEN_BUDGET } = env();
    if (AGENT_DAILY_TOKEN_BUDGET > 0 && !modelSpec.startsWith("replay/")) {
      const spent = dailyBudgetSpent(await builderTokensToday(tx, userId), AGENT_DAILY_TOKEN_BUDGET);
      if (spent) throw new DailyBudgetSpentError(spent);
    }
    await beforeRecord?.(tx);
    const [created] = await tx
      .insert(runs)
      .values({
        projectId,
        userId,
        mode,
        prompt,
        ...choice,
        maxIterations: maxIterations ?? env().AGENT_MAX_ITERATIONS,
      })
      .returning();
    if (!created) throw new Error("run insert returned no row");
    await saveEntry(tx, {
      runId: created.id,
      projectId,
      iteration: 0,
      kind: "user",
      payload: refs.length ? { prompt, mode, images: refs } : { prompt, mode },
    });
    const [message] = await tx
      .insert(messages)
      .values({ projectId, runId: created.id, role: "user", content: prompt })
      .returning({ id: messages.id });
    await saveImages(tx, { projectId, runId: created.id, messageId: message?.id ?? null }, stored);
    await appendRunEvent(tx, {
      runId: created.id,
      projectId,
      type: "queued",
      data: { mode, model: modelSpec, maxIterations: created.maxIterations },
    });
    await tx.update(projects).set({ updatedAt: new Date() }).where(eq(projects.id, projectId));
    return created;
  });
}

/**
 * Records the prompt, then sends `agent/prompt` with the run id as the event
 * id, so a resent event cannot start a second run. If the engine cannot be
 * reached the run is marked failed (the prompt stays in the transcript).
 */
export async function startRun(db: Db, request: PromptRequest): Promise<Run> {
  const run = await recordPrompt(db, request);
  const { projectId, userId } = request;
  try {
    await inngest.send(
      agentPrompt.create({ runId: run.id, projectId, userId, prompt: run.prompt, mode: run.mode }, { id: run.id }),
    );
  } catch (error) {
    // The builder reads a sentence; the send's own error (addresses, a stack) goes to the server log.
    console.error(`run ${run.id}: could not send agent/prompt to the Inngest engine:`, error);
    const reason = "Could not reach the Inngest engine, so the run did not start. Retry once the engine is running.";
    await failRun(db, run.id, reason);
    throw new EngineUnavailableError(reason, { cause: error });
  }
  return run;
}

/**
 * Runs one of the bundled offline demos (a replay of a scripted session, no model needed); the todo page unless
 * told. A demo that cannot run here (the Vite one without the registry) is refused with the reason.
 */
export async function startDemoRun(
  db: Db,
  {
    userId,
    projectId,
    onlyWhenIdle,
    demo = DEMO_SCRIPT,
  }: { userId: string; projectId: string; onlyWhenIdle?: boolean; demo?: DemoName },
): Promise<Run> {
  const chosen = DEMOS[demo];
  const unavailable = await demoUnavailableReason(chosen);
  if (unavailable) throw new DemoUnavailableError(unavailable);
  return startRun(db, {
    userId,
    projectId,
    input: { prompt: chosen.prompt, mode: "build" },
    model: chosen.model,
    onlyWhenIdle,
  });
}

/**
 * Asks a run to stop: records `stopping` at once (once, however many stops
 * arrive), then sends `agent/stop`, which the engine matches by runId
 * (cancelOn). A run already stopping gets the event again (an earlier send
 * may have failed). Then the engine is asked whether it still has the run:
 * one it lost is ended as failed here instead of staying `stopping`.
 * Stopping a finished run is a no-op that says so.
 */
export async function stopRun(
  db: Db,
  { userId, runId }: { userId: string; runId: string },
): Promise<{ stopping: boolean; status: Run["status"] }> {
  const [run] = isUuid(runId)
    ? await db
        .select()
        .from(runs)
        .where(and(eq(runs.id, runId), eq(runs.userId, userId)))
    : [];
  if (!run) throw new NotFoundError("Run not found");
  if (!(await markRunStopping(db, run))) {
    const status = await runStatus(db, run.id);
    if (status !== "stopping") return { stopping: false, status };
  }
  try {
    await inngest.send(agentStop.create({ runId: run.id, projectId: run.projectId }));
  } catch (error) {
    console.error(`run ${run.id}: could not send agent/stop to the Inngest engine:`, error);
    throw new EngineUnavailableError(
      "Could not reach the Inngest engine to stop the run. It is marked stopping; try Stop again once the engine is running.",
      { cause: error },
    );
  }
  // The engine answered the send; an error here only means the run is left to the engine and the periodic check.
  const reconciled = await reconcileRuns(db, { runIds: [run.id] }).catch(() => undefined);
  if (reconciled?.ended.length) return { stopping: false, status: await runStatus(db, run.id) };
  return { stopping: true, status: "stopping" };
}

async function runStatus(db: Db, runId: string): Promise<Run["status"]> {
  const [row] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, runId));
  if (!row) throw new NotFoundError("Run not found");
  return row.status;
}
