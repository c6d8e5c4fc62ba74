/**
 * What the builder page loads and the chat actions it takes. The route
 * (app/routes/projects.$projectId.tsx) stays thin: it parses the request and
 * calls these.
 */
import { and, asc, desc, eq, lte, max } from "drizzle-orm";
import { ZodError } from "zod";
import type { Db } from "../../db/client";
import { messages, runEvents, runs, type Project, type Run } from "../../db/schema";
import { estimatedCost, parsePrices, priceOf } from "../../inngest/agent/budget";
import { isDemoName } from "../../inngest/agent/demo";
import { DEMO_SCRIPT } from "../../model-replay/script";
import { env } from "../env.server";
import { loadModelPicker, projectModelProblem, type ModelPicker } from "../models/model-keys.server";
import type { ProjectEvent } from "../models/project-events";
import { renameProject } from "../models/projects.server";
import {
  ImageRefusedError,
  imageLimits,
  imagesOfMessages,
  imagesOfRun,
  type PromptImageRef,
  type PromptImageUpload,
} from "../models/prompt-images.server";
import {
  DailyBudgetSpentError,
  DemoUnavailableError,
  EngineUnavailableError,
  isUuid,
  ModelNotConfiguredError,
  NotFoundError,
  RunActiveError,
  startDemoRun,
  startRun,
  stopRun,
  VisionUnsupportedError,
} from "../models/runs.server";
import {
  listSteering,
  queueSteer,
  resendSteer,
  SteerRefusedError,
  withdrawSteer,
  type SteerView,
} from "../models/steering.server";
import { newestProjectVersion, oldestKeptVersion } from "../models/versions.server";
import type { LiveRunSeed, NewestVersion } from "./live-run";

const HISTORY_RUNS = 30;

export interface RunSummary {
  id: string;
  prompt: string;
  mode: Run["mode"];
  status: Run["status"];
  model: string;
  iteration: number;
  maxIterations: number;
  inputTokens: number;
  outputTokens: number;
  /** Estimated from AGENT_PRICES and the built-in table (inngest/agent/budget.ts); null when the model's price is unknown. */
  costUsd: number | null;
  error: string | null;
  createdAt: string;
  /** Null while running (or if it never started). */
  durationMs: number | null;
}

export interface BuilderData {
  project: { id: string; title: string };
  transcript: Array<{
    id: string;
    role: "user" | "assistant" | "system";
    content: string;
    createdAt: string;
    runId: string | null;
    /** The images a prompt carried (decision 036); empty for every other message. */
    images: PromptImageRef[];
  }>;
  history: RunSummary[];
  /** Messages sent while a run worked: queued, delivered at a step, or left unread when the run ended (decision 033). */
  steering: SteerView[];
  /** The latest run and its events up to `cursor`: the live card's starting state. */
  live: { seed: LiveRunSeed; events: ProjectEvent[] } | null;
  /** The highest event id the page reflects: the event stream resumes after it. */
  cursor: number;
  /** Why prompts cannot run (no model configured, or one missing its key or URL); null when they can. */
  modelProblem: string | null;
  /** The project's model and fallback, and what may be picked (decision 034). */
  models: ModelPicker;
  /** Images a prompt may carry (PROMPT_IMAGE_MAX_COUNT of PROMPT_IMAGE_MAX_BYTES each). */
  imageLimits: { maxBytes: number; maxCount: number };
  /** Versions numbered below this were pruned by the history's size bound; null when none was. */
  versionsOldestKept: number | null;
  /** The newest version and the one it restored: the stopped card offers Redo after its run's Undo. */
  newestVersion: NewestVersion | null;
}

export async function loadBuilder(db: Db, project: Project): Promise<BuilderData> {
  // The cursor is read first: anything committed later arrives over the
  // stream, and the live card folds events by id, so nothing shows twice.
  const [{ cursor } = { cursor: 0 }] = await db
    .select({ cursor: max(runEvents.id) })
    .from(runEvents)
    .where(eq(runEvents.projectId, project.id));
  const upTo = cursor ?? 0;
  const [transcript, recent, steering, versionsOldestKept, newest] = await Promise.all([
    db
      .select()
      .from(messages)
      .where(eq(messages.projectId, project.id))
      .orderBy(asc(messages.createdAt), asc(messages.id)),
    db.select().from(runs).where(eq(runs.projectId, project.id)).orderBy(desc(runs.createdAt)).limit(HISTORY_RUNS),
    listSteering(db, project.id),
    oldestKeptVersion(db, project),
    newestProjectVersion(db, project),
  ]);
  const images = await imagesOfMessages(
    db,
    transcript.filter((m) => m.role === "user").map((m) => m.id),
  );
  const latest = recent[0];
  const events = latest
    ? await db
        .select()
        .from(runEvents)
        .where(and(eq(runEvents.runId, latest.id), lte(runEvents.id, upTo)))
        .orderBy(asc(runEvents.id))
    : [];
  return {
    project: { id: project.id, title: project.title },
    transcript: transcript.map((m) => ({
      id: m.id,
      role: m.role,
      content: m.content,
      createdAt: m.createdAt.toISOString(),
      runId: m.runId,
      images: images.get(m.id) ?? [],
    })),
    history: recent.map(summarize),
    steering,
    live: latest
      ? {
          seed: { id: latest.id, mode: latest.mode, maxIterations: latest.maxIterations },
          events: events.map((e) => ({
            id: e.id,
            runId: e.runId,
            type: e.type,
            data: e.data,
            createdAt: e.createdAt.toISOString(),
          })),
        }
      : null,
    cursor: upTo,
    // The same check a prompt goes through (recordPrompt), so the page and the server agree on whether it may be sent.
    modelProblem: await projectModelProblem(db, project),
    models: await loadModelPicker(db, project.userId, project),
    imageLimits: imageLimits(),
    versionsOldestKept,
    newestVersion: newest,
  };
}

export function summarize(run: Run): RunSummary {
  return {
    id: run.id,
    prompt: run.prompt,
    mode: run.mode,
    status: run.status,
    model: run.model,
    iteration: run.iteration,
    maxIterations: run.maxIterations,
    inputTokens: run.inputTokens,
    outputTokens: run.outputTokens,
    costUsd: estimatedCost(run, priceOf(run.model, parsePrices(env().AGENT_PRICES))) ?? null,
    error: run.error,
    createdAt: run.createdAt.toISOString(),
    durationMs: run.startedAt && run.finishedAt ? run.finishedAt.getTime() - run.startedAt.getTime() : null,
  };
}

/** A run of this project named by a form field; none for a foreign or malformed id. */
function projectRun(db: Db, projectId: string, runId: FormDataEntryValue | null): Promise<Run[]> {
  if (typeof runId !== "string" || !isUuid(runId)) return Promise.resolve([]);
  return db
    .select()
    .from(runs)
    .where(and(eq(runs.id, runId), eq(runs.projectId, projectId)));
}

export type ChatResult =
  | { ok: true; intent: string; message?: string }
  /** `prompt`: the text of a refused prompt, given back so the box (even without JavaScript) still holds it. */
  | { ok: false; intent: string; error: string; status: number; prompt?: string };

/** The images a multipart prompt carried (prompt-images.server.ts), or why they cannot be sent. */
export interface PromptUpload {
  images: PromptImageUpload[];
  problem?: string;
}

/** A prompt with images while a run works: steering messages carry text only (decision 036). */
export const IMAGES_WHILE_WORKING =
  "Images cannot be added to a run that is working: wait for it to finish (or stop it), then send them with a prompt.";

/** What Stop answers for a run that is not active any more (or already stopping). */
export function notStoppableMessage(status: Run["status"]): string {
  switch (status) {
    case "complete":
      return "That run has already finished.";
    case "failed":
      return "That run has already failed.";
    case "stopped":
      return "That run has already stopped.";
    case "stopping":
      return "That run is already stopping.";
    default:
      return `That run is ${status}.`;
  }
}

/**
 * A prompt while a run is active is queued for that run (steering); otherwise it starts a run. A run that ends or
 * starts between the two checks is caught by the other one.
 */
async function promptOrSteer(
  db: Db,
  userId: string,
  project: Project,
  form: FormData,
  images: readonly PromptImageUpload[],
): Promise<string | undefined> {
  const prompt = String(form.get("prompt") ?? "");
  // With images there is no steering: the prompt starts a run or is refused whole.
  const steer = async () => images.length === 0 && (await queueSteer(db, { userId, projectId: project.id, prompt }));
  if (await steer()) return QUEUED_MESSAGE;
  try {
    await startRun(db, {
      userId,
      projectId: project.id,
      input: { prompt, mode: form.get("mode") === "ask" ? "ask" : "build" },
      onlyWhenIdle: true,
      images,
    });
    return undefined;
  } catch (error) {
    if (error instanceof RunActiveError && images.length > 0) throw new ImageRefusedError(IMAGES_WHILE_WORKING);
    if (error instanceof RunActiveError && (await steer())) return QUEUED_MESSAGE;
    throw error;
  }
}

const QUEUED_MESSAGE = "Queued: the agent reads it at its next step.";

/** The builder page's form intents: prompt, demo, retry, stop, rename, steer-withdraw, steer-send. */
export async function handleChatAction(
  db: Db,
  userId: string,
  project: Project,
  form: FormData,
  upload: PromptUpload = { images: [] },
): Promise<ChatResult> {
  const requested = String(form.get("intent") ?? "prompt");
  const typed = String(form.get("prompt") ?? "");
  // "demo:<name>" picks one of the bundled demos (a button carries one value); plain "demo" is the todo page.
  const intent = requested.startsWith("demo:") ? "demo" : requested;
  try {
    switch (intent) {
      case "prompt": {
        if (upload.problem) return { ok: false, intent, error: upload.problem, status: 400, prompt: typed };
        const message = await promptOrSteer(db, userId, project, form, upload.images);
        return message ? { ok: true, intent, message } : { ok: true, intent };
      }
      case "steer-withdraw": {
        await withdrawSteer(db, { projectId: project.id, steerId: String(form.get("steerId") ?? "") });
        return { ok: true, intent, message: "Withdrawn: the agent will not see it." };
      }
      case "steer-send": {
        await resendSteer(db, { userId, projectId: project.id, steerId: String(form.get("steerId") ?? "") });
        return { ok: true, intent };
      }
      case "demo": {
        const demo = requested.startsWith("demo:") ? requested.slice("demo:".length) : DEMO_SCRIPT;
        if (!isDemoName(demo))
          return { ok: false, intent, error: `There is no demo named “${String(demo)}”.`, status: 400 };
        await startDemoRun(db, { userId, projectId: project.id, onlyWhenIdle: true, demo });
        return { ok: true, intent };
      }
      case "retry": {
        const [failed] = await projectRun(db, project.id, form.get("runId"));
        if (!failed) throw new NotFoundError("Run not found");
        // Retry is offered for a run that did not finish its work; a complete run is answered, not retried.
        if (failed.status !== "failed" && failed.status !== "stopped") {
          return {
            ok: false,
            intent,
            error: `Only a failed or stopped run can be retried; that one is ${failed.status}.`,
            status: 409,
          };
        }
        await startRun(db, {
          userId,
          projectId: project.id,
          input: { prompt: failed.prompt, mode: failed.mode, maxIterations: failed.maxIterations },
          // The models the run recorded, its keys and fallback included (a demo's replay spec as well).
          model: failed.model
            ? {
                model: failed.model,
                modelKeyId: failed.modelKeyId,
                fallbackModel: failed.fallbackModel,
                fallbackKeyId: failed.fallbackKeyId,
              }
            : undefined,
          onlyWhenIdle: true,
          images: await imagesOfRun(db, failed.id),
        });
        return { ok: true, intent };
      }
      case "stop": {
        const [run] = await projectRun(db, project.id, form.get("runId"));
        if (!run) throw new NotFoundError("Run not found");
        const result = await stopRun(db, { userId, runId: run.id });
        return { ok: true, intent, message: result.stopping ? "Stopping…" : notStoppableMessage(result.status) };
      }
      case "rename": {
        await renameProject(db, userId, project.id, String(form.get("title") ?? ""));
        return { ok: true, intent, message: "Renamed." };
      }
      default:
        return { ok: false, intent, error: `Unknown action “${intent}”.`, status: 400 };
    }
  } catch (error) {
    // A refused prompt gives its text back, so the box keeps it.
    const kept = intent === "prompt" ? { prompt: typed } : {};
    if (error instanceof ZodError)
      return { ok: false, intent, error: error.issues.map((i) => i.message).join(" "), status: 400, ...kept };
    if (error instanceof ImageRefusedError || error instanceof VisionUnsupportedError)
      return { ok: false, intent, error: error.message, status: error.status, ...kept };
    if (
      error instanceof NotFoundError ||
      error instanceof RunActiveError ||
      error instanceof DailyBudgetSpentError ||
      error instanceof SteerRefusedError ||
      error instanceof EngineUnavailableError ||
      error instanceof DemoUnavailableError ||
      error instanceof ModelNotConfiguredError
    ) {
      return {
        ok: false,
        intent,
        error: error.message,
        status: "status" in error ? Number(error.status) : 400,
        ...kept,
      };
    }
    throw error;
  }
}
