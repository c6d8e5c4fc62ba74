/**
 * The bodies of the coding agent's steps. Each one is safe to run again
 * after a crash: it first looks for what it already saved, writes with
 * upserts keyed by (run, iteration, kind), and returns only a tiny outcome,
 * so the engine's state per iteration stays constant.
 */
import { and, eq, ne } from "drizzle-orm";
import { pgSafeText } from "../../db/pg-safe";
import { retryOnConnectionError } from "../../db/retry-connection";
import { appendRunEvent } from "../../db/run-events";
import { projects, runs, UNTITLED_PROJECT, type AgentEntry, type Todo } from "../../db/schema";
import {
  takeRunVersion,
  toolMayChangeFiles,
  writeWithRunVersion,
  type RunVersionPart,
} from "../../versions/run-versions";
import { RunFailedError, RunRetryableError } from "../run-failure";
import { beginIteration, markRunStarted, RunNotFoundError, type StartedRun } from "../run-lifecycle";
import { appContextFor, lastAppLogSeq } from "./app-context";
import { estimatedCost, overBudget, priceOf, tokensUsed, usageWith } from "./budget";
import { planConversation } from "./compaction";
import type { AgentContext } from "./context";
import {
  calibratedBudget,
  contextWindowOf,
  conversationBudget,
  estimateCalibration,
  estimateTokens,
  promptBudget,
  SYSTEM_PROMPT_TOKENS,
} from "./context-budget";
import { findEntries, findEntry, projectEntries, recountTokens, saveEntry, unusableActionsInARow } from "./entries";
import { ModelNotConfiguredError } from "./model/config";
import {
  generateTitle,
  isAbortError,
  isModelError,
  isPermanentModelError,
  nextAction,
  providerMessage,
  type AgentAction,
  type NextActionResult,
} from "./model/next-action";
import { attachImages } from "./model/vision";
import { deliverSteering } from "./steering";
import { stepOutput } from "./step-output";
import { stoppedBy, watchForStop } from "./stop-signal";
import { streamPublisher, type StreamPublisher } from "./stream-publisher";
import { findStuck, stepsOf, stuckNote, stuckReason, stuckVerdict, warnedPatterns } from "./stuck";
import { describeAction, runTool, type ToolOutcome } from "./tools";
import { unstorableTarget } from "./unstorable-action";

export type AgentRun = StartedRun & { needsTitle: boolean };

/** Marks the run running, checks its model and attaches the project's sandbox. */
export async function startAgentRun(agent: AgentContext, runId: string): Promise<AgentRun> {
  const { db } = agent.database;
  let run: StartedRun;
  try {
    run = await markRunStarted(db, runId);
  } catch (error) {
    if (error instanceof RunNotFoundError) throw new RunFailedError(error.message);
    throw error;
  }
  if (!run.active) return { ...run, needsTitle: false };
  try {
    await agent.model(run);
  } catch (error) {
    if (error instanceof ModelNotConfiguredError) throw new RunFailedError(error.message);
    throw error;
  }
  await agent.sandbox(run.projectId);
  // The files as the run found them, when they changed since the last version (a restore, the first run).
  await takeRunVersion(db, run, { kind: "run-start", iteration: 0 }, agent.history);
  const [project] = await db.select({ title: projects.title }).from(projects).where(eq(projects.id, run.projectId));
  const [earlier] = await db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.projectId, run.projectId), ne(runs.id, run.id)))
    .limit(1);
  return { ...run, needsTitle: project?.title === UNTITLED_PROJECT && !earlier };
}

function titleFromPrompt(prompt: string): string {
  const words = prompt.replace(/\s+/g, " ").trim().split(" ").slice(0, 6).join(" ");
  return words.length > 60 ? `${words.slice(0, 59)}…` : words || UNTITLED_PROJECT;
}

/** Names a project after its first prompt. A title is a nicety: if the model fails, the prompt's first words do. */
export async function nameProject(agent: AgentContext, run: AgentRun): Promise<{ title: string }> {
  const { db } = agent.database;
  const [row] = await db.select({ prompt: runs.prompt }).from(runs).where(eq(runs.id, run.id));
  const prompt = row?.prompt ?? "";
  let title = titleFromPrompt(prompt);
  let usage = { inputTokens: 0, outputTokens: 0 };
  const watch = watchForStop(agent.database, run);
  try {
    const { registry } = await agent.model(run);
    const named = await generateTitle({
      registry,
      prompt,
      signal: AbortSignal.any([watch.signal, AbortSignal.timeout(agent.modelTimeoutMs)]),
    });
    usage = named.usage;
    // generateTitle has tidied it already; its fallback is no better than the prompt's words.
    if (named.title !== UNTITLED_PROJECT) title = named.title;
  } catch (error) {
    if (!isAbortError(error) && !watch.signal.aborted) console.warn(`title for run ${run.id}: ${String(error)}`);
  } finally {
    watch.close();
  }
  await db.transaction(async (tx) => {
    // The event first: it takes the project's event lock before any row lock, the order every writer keeps (a Stop
    // takes the lock, then the run's row); the other way round, the two deadlocked.
    await appendRunEvent(tx, {
      runId: run.id,
      projectId: run.projectId,
      type: "title",
      dedupeKey: "title",
      data: { title },
    });
    const user = await findEntry(tx, run.id, 0, "user");
    if (user) await saveEntry(tx, { ...user, payload: { ...user.payload, usage } });
    await recountTokens(tx, run.id);
    await tx
      .update(projects)
      .set({ title: pgSafeText(title), updatedAt: new Date() })
      .where(and(eq(projects.id, run.projectId), eq(projects.title, UNTITLED_PROJECT)));
  });
  return { title };
}

export type Thought =
  | { next: "act" | "reply" | "repair" | "stop" }
  /** The prompt is over its budget: compact the conversation through this entry, then think again. */
  | { next: "compact"; through: number }
  /** End the run failed with this reason, before asking the model: it is stuck, or over its token budget. */
  | { next: "fail"; reason: string };

/** Thrown inside a transaction to undo it when the run stopped meanwhile. */
class RunNotRunning extends Error {}

function thoughtOf(payload: Record<string, unknown>, kind: "action" | "reply"): Thought {
  if (kind === "reply") return { next: "reply" };
  return { next: payload.problem ? "repair" : "act" };
}

export interface ThinkOptions {
  /** The conversation was just compacted for this iteration: send it even if it is still over budget. */
  compacted?: boolean;
}

/** think-i: asks the model for the next action and saves it. */
export async function think(
  agent: AgentContext,
  run: AgentRun,
  iteration: number,
  options: ThinkOptions = {},
): Promise<Thought> {
  const { db } = agent.database;
  // A step re-executed after the model answered must not ask again.
  const found = await findEntries(db, run.id, iteration, ["reply", "action"]);
  const saved = found.reply ?? found.action;
  const thought = saved
    ? thoughtOf(saved.payload, saved.kind as "action" | "reply")
    : await askModel(agent, run, iteration, options);
  if (thought.next === "repair") {
    const inARow = await unusableActionsInARow(db, run.id);
    if (inARow > agent.maxRepairs) {
      const last = await findEntry(db, run.id, iteration, "result");
      throw new RunFailedError(
        `The model's reply could not be used ${inARow} times in a row (last: ${String(last?.payload.content ?? "")})`,
      );
    }
  }
  return thought;
}

/**
 * Tells the agent, in a note before its next turn, that it is repeating itself ("noted"); or, when it went on after
 * being told, says to end the run. Undefined: carry on. The note is an entry (run, iteration, "note"), so a retried
 * think sends it again.
 */
async function checkStuck(
  agent: AgentContext,
  run: AgentRun,
  iteration: number,
  entries: AgentEntry[],
): Promise<Thought | "noted" | undefined> {
  const verdict = stuckVerdict(findStuck(stepsOf(entries, run.id)), agent.stuck, warnedPatterns(entries, run.id));
  if (verdict.kind === "stop") return { next: "fail", reason: stuckReason(verdict.finding) };
  if (verdict.kind === "ok") return undefined;
  const { pattern, repeats, description } = verdict.finding;
  const message = stuckNote(verdict.finding, agent.stuck);
  await agent.database.db.transaction(async (tx) => {
    await appendRunEvent(tx, {
      runId: run.id,
      projectId: run.projectId,
      type: "stuck_warning",
      dedupeKey: `stuck-${iteration}`,
      data: { iteration, pattern, repeats, description },
      onlyIfStatus: ["running"],
    });
    await saveEntry(tx, {
      runId: run.id,
      projectId: run.projectId,
      iteration,
      kind: "note",
      payload: { message, pattern, repeats },
    });
  });
  return "noted";
}

async function askModel(
  agent: AgentContext,
  run: AgentRun,
  iteration: number,
  options: ThinkOptions,
): Promise<Thought> {
  const { db } = agent.database;
  // After a compaction the iteration has begun already (think-i recorded it): only check that the run still runs.
  // Watching first: a stop recorded before the check below is the check's to see, one after it the watch's.
  const watch = watchForStop(agent.database, run);
  // What the model writes reaches the live card as it is written (decision 035); the durable record is unchanged.
  let stream: StreamPublisher | undefined;
  try {
    const running = options.compacted
      ? (await db.select({ status: runs.status }).from(runs).where(eq(runs.id, run.id)))[0]?.status === "running"
      : await beginIteration(db, run, iteration);
    if (!running) return { next: "stop" };
    const { config, registry } = await agent.model(run);
    const sandbox = await agent.sandbox(run.projectId);
    const files = await sandbox.listFiles().then(
      (l) => l.files,
      () => [],
    );
    const [snapshot] = await db.select({ todos: runs.todos }).from(runs).where(eq(runs.id, run.id));
    // Checked before each question to the model: a run over budget ends here, between steps.
    const beyondBudget = overBudget(await tokensUsed(db, run), agent.budgets);
    if (beyondBudget) return { next: "fail", reason: beyondBudget };
    let entries = await projectEntries(db, run.projectId);
    const stuck = await checkStuck(agent, run, iteration, entries);
    if (typeof stuck === "object") return stuck;
    // What the builder sent while the previous step ran becomes part of this question (once, keyed by iteration),
    // after the checks that could end the run here: a message marked read is one the model is asked with.
    const steered = await deliverSteering(db, run, iteration);
    // The note and the builder's messages are part of what the model reads.
    if (stuck === "noted" || steered > 0) entries = await projectEntries(db, run.projectId);
    // The app's state and the log lines since the previous think; where this think stopped reading is saved with it.
    const app = await appContextFor(sandbox, lastAppLogSeq(entries));
    const context = {
      mode: run.mode,
      iteration,
      max_iterations: run.maxIterations,
      files,
      todos: snapshot?.todos ?? [],
      ...(app.context ? { app: app.context } : {}),
    };
    // In estimated tokens, calibrated by how the provider counted the last prompt it answered.
    const budget = calibratedBudget(promptBudget(contextWindowOf(config, agent.context)), estimateCalibration(entries));
    const contextTokens = estimateTokens(JSON.stringify(context));
    const plan = planConversation(entries, conversationBudget(budget, contextTokens));
    // Saved with the answer, beside the provider's count: the next step's calibration.
    const promptEstimate = SYSTEM_PROMPT_TOKENS + contextTokens + plan.tokens;
    if (plan.compactThrough !== undefined) {
      if (!options.compacted) return { next: "compact", through: plan.compactThrough };
      console.warn(
        `think-${iteration} of run ${run.id}: the conversation is still over its budget after compaction ` +
          `(${plan.tokens} tokens of turns); sending it as it is`,
      );
    }
    const timeout = AbortSignal.timeout(agent.modelTimeoutMs);
    let result: NextActionResult;
    stream = streamPublisher(agent.database, { runId: run.id, projectId: run.projectId, iteration });
    try {
      result = await nextAction({
        config,
        registry,
        mode: run.mode,
        context,
        conversation: await attachImages(db, plan.turns, { model: config.label }),
        signal: AbortSignal.any([watch.signal, timeout]),
        onPartial: (partial) => stream?.partial(partial),
      });
    } catch (error) {
      if (stoppedBy(watch.signal)) return { next: "stop" };
      if (timeout.aborted)
        throw new RunRetryableError(`The model did not answer within ${agent.modelTimeoutMs / 1000} s.`);
      // A bad key or an unknown model will not get better by retrying the step.
      if (isPermanentModelError(error)) {
        throw new RunFailedError(`The model server refused the request (${config.label}): ${providerMessage(error)}`);
      }
      // Retried already (withModelRetry); the step's own retries may still find the server back.
      if (isModelError(error)) {
        throw new RunRetryableError(`The model server did not answer (${config.label}): ${providerMessage(error)}`, {
          cause: error,
        });
      }
      throw error;
    }
    if (stoppedBy(watch.signal)) return { next: "stop" };
    // The answer is in hand (and paid for): a database blip must not make the step ask again.
    return await savingThrough(run, `think-${iteration}`, () =>
      saveThought(agent, run, iteration, result, { appLogSeq: app.nextSeq, promptEstimate }),
    );
  } finally {
    watch.close();
    await stream?.close();
  }
}

async function saveThought(
  agent: AgentContext,
  run: AgentRun,
  iteration: number,
  result: NextActionResult,
  { appLogSeq, promptEstimate }: { appLogSeq: number | undefined; promptEstimate: number },
): Promise<Thought> {
  const { db } = agent.database;
  const base = { runId: run.id, projectId: run.projectId, iteration };
  // Where the app's log was read up to for this question (the next think starts there), and what the prompt was
  // estimated at (the next think's calibration).
  const seen = { ...(appLogSeq === undefined ? {} : { appLogSeq }), promptEstimate };
  try {
    return await db.transaction(async (tx) => {
      // The run's tokens and estimated cost so far, shown on the live card with the step.
      const tokens = await usageWith(tx, run.id, iteration, result.usage);
      const costUsd = estimatedCost(tokens, priceOf(run.model, agent.prices));
      const usage = { ...tokens, ...(costUsd !== undefined ? { costUsd } : {}) };
      const event = (type: string, key: string, data: Record<string, unknown>) => ({
        runId: run.id,
        projectId: run.projectId,
        type,
        dedupeKey: `${key}-${iteration}`,
        data: { iteration, ...data, usage },
        onlyIfStatus: ["running"] as const,
      });
      let thought: Thought;
      let written;
      if (!result.ok) {
        const tool = result.problem === "unknown_tool" ? "unknown_tool" : "invalid_output";
        await saveEntry(tx, {
          ...base,
          kind: "action",
          payload: { problem: result.problem, raw: result.raw, usage: result.usage, ...seen },
        });
        await saveEntry(tx, {
          ...base,
          kind: "result",
          payload: { problem: result.problem, ok: false, content: result.error },
        });
        written = await appendRunEvent(
          tx,
          event("tool_result", "result", { tool, ok: false, summary: result.error.split("\n")[0] }),
        );
        thought = { next: "repair" };
      } else if (result.action.tool === "reply_to_user") {
        await saveEntry(tx, {
          ...base,
          kind: "reply",
          payload: { message: result.action.message, usage: result.usage, ...seen },
        });
        written = await appendRunEvent(tx, event("reply", "reply", { message: result.action.message }), {
          currentTool: null,
          toolDescription: null,
        });
        thought = { next: "reply" };
      } else {
        const description = describeAction(result.action);
        const refused = unstorableTarget(result.action);
        await saveEntry(tx, {
          ...base,
          kind: "action",
          payload: { action: result.action, usage: result.usage, ...seen, ...(refused ? { refused } : {}) },
        });
        written = await appendRunEvent(tx, event("tool_call", "call", { tool: result.action.tool, description }), {
          currentTool: result.action.tool,
          toolDescription: description,
        });
        thought = { next: "act" };
      }
      if (!written) throw new RunNotRunning();
      await recountTokens(tx, run.id);
      return thought;
    });
  } catch (error) {
    if (error instanceof RunNotRunning) return { next: "stop" };
    throw error;
  }
}

/**
 * Saves what a step produced, retrying for a while (db/retry-connection.ts)
 * when the database connection drops, instead of failing the step and
 * redoing its work. The saves are upserts, so one that did commit before its
 * connection dropped is rewritten, not doubled.
 */
function savingThrough<T>(run: AgentRun, step: string, save: () => Promise<T>): Promise<T> {
  return retryOnConnectionError(save, {
    onRetry: (code, attempt) =>
      console.warn(
        `${step} of run ${run.id}: the database connection failed (${code}); saving again (attempt ${attempt + 1})`,
      ),
  });
}

export type Acted = { next: "think" | "stop" };

/** act-i: runs the saved action in the sandbox and saves its result. */
export async function act(agent: AgentContext, run: AgentRun, iteration: number): Promise<Acted> {
  const { db } = agent.database;
  // The result is saved in the same transaction as its events: once it exists,
  // the tool's side effect happened and must not happen again.
  const { action: saved, result: done } = await findEntries(db, run.id, iteration, ["action", "result"]);
  if (done) {
    // Interrupted after the result was saved: the version, if it was not taken yet, holds the same files now.
    await takeStepVersion(agent, run, iteration, saved);
    return { next: done.payload.stopped ? "stop" : "think" };
  }
  if (!saved) throw new Error(`act-${iteration}: no action saved for run ${run.id}`);
  const action = saved.payload.action as AgentAction;
  // Watching first: a stop recorded before the check below is the check's to see, one after it the watch's.
  const watch = watchForStop(agent.database, run);
  try {
    const [current] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, run.id));
    if (current?.status !== "running") return { next: "stop" };
    const refused = saved.payload.refused;
    const outcome: ToolOutcome =
      typeof refused === "string"
        ? { ok: false, content: `Error: ${refused}`, summary: refused.split("\n")[0]!.slice(0, 100), filesChanged: [] }
        : await runTool(await agent.sandbox(run.projectId), action, {
            mode: run.mode,
            signal: watch.signal,
            limits: agent.limits,
          });
    // The version is saved with the result, in its transaction; a stopped step's partial work counts too. A
    // write_file changed its one file and nothing else, so the version need look at no other.
    const version = stepVersionPart(saved, iteration, action.tool === "write_file" ? outcome.filesChanged : undefined);
    // The tool has run: if its result cannot be saved for a few seconds, retrying the whole step would run it again.
    const step = `act-${iteration}`;
    try {
      await savingThrough(run, step, () => saveOutcome(agent, run, iteration, action, outcome, version));
    } catch (error) {
      if (!version) throw error;
      // Not with its version: the result alone, so that a retried step never runs the tool again, then the
      // version on its own, as a step resumed after its result takes it.
      console.warn(
        `${step} of run ${run.id}: saving the result with its version failed, saving them apart: ${String(error)}`,
      );
      await savingThrough(run, step, () => saveOutcome(agent, run, iteration, action, outcome));
      await takeRunVersion(agent.database.db, run, version, agent.history);
    }
    return { next: outcome.stopped || stoppedBy(watch.signal) ? "stop" : "think" };
  } finally {
    watch.close();
  }
}

async function takeStepVersion(
  agent: AgentContext,
  run: AgentRun,
  iteration: number,
  saved: { payload: Record<string, unknown> } | undefined,
) {
  const version = stepVersionPart(saved, iteration);
  if (version) await takeRunVersion(agent.database.db, run, version, agent.history);
}

/** The version a step takes, when its tool can change files and it ran; `files`: the only ones it can have changed. */
function stepVersionPart(
  saved: { payload: Record<string, unknown> } | undefined,
  iteration: number,
  files?: string[],
): RunVersionPart | null {
  const tool = (saved?.payload.action as AgentAction | undefined)?.tool;
  if (!tool || typeof saved?.payload.refused === "string" || !toolMayChangeFiles(tool)) return null;
  return { kind: "step", iteration, tool, files };
}

async function saveOutcome(
  agent: AgentContext,
  run: AgentRun,
  iteration: number,
  action: AgentAction,
  outcome: ToolOutcome,
  /** The step's version, taken in the same transaction. */
  version?: RunVersionPart | null,
) {
  const { db } = agent.database;
  const key = (name: string) => `${name}-${iteration}`;
  const event = (type: string, data: Record<string, unknown>) => ({
    runId: run.id,
    projectId: run.projectId,
    type,
    dedupeKey: key(type),
    data: { iteration, ...data },
  });
  const save = async (tx: Parameters<Parameters<typeof db.transaction>[0]>[0]) => {
    await saveEntry(tx, {
      runId: run.id,
      projectId: run.projectId,
      iteration,
      kind: "result",
      payload: {
        tool: action.tool,
        ok: outcome.ok,
        content: outcome.content,
        summary: outcome.summary,
        stopped: !!outcome.stopped,
        // Stuck detection counts a step that changed files as progress (stuck.ts).
        filesChanged: outcome.filesChanged.length,
      },
    });
    await appendRunEvent(
      tx,
      event("tool_result", {
        tool: action.tool,
        ok: outcome.ok,
        summary: outcome.summary,
        output: stepOutput(outcome.content),
      }),
      {
        currentTool: null,
        toolDescription: null,
      },
    );
    if (outcome.egressRefused?.length) {
      // The builder sees which connections the sandbox refused (the model reads them in the result's text).
      const refused = outcome.egressRefused
        .slice(0, 20)
        .map(({ host, port, reason, at }) => ({ host, port, reason, at }));
      await appendRunEvent(tx, event("egress_refused", { tool: action.tool, refused }));
    }
    if (outcome.todos) {
      await appendRunEvent(tx, event("todos", { todos: outcome.todos }), { todos: outcome.todos as Todo[] });
    }
    if (outcome.filesChanged.length > 0) {
      const [row] = await tx.select({ files: runs.modifiedFiles }).from(runs).where(eq(runs.id, run.id));
      const files = [...new Set([...(row?.files ?? []), ...outcome.filesChanged])].sort();
      await appendRunEvent(tx, event("files_changed", { files: outcome.filesChanged }), { modifiedFiles: files });
    }
  };
  if (version) await writeWithRunVersion(db, run, version, agent.history, save);
  else await db.transaction(save);
}

/** The reply the model ended the run with. */
export async function savedReply(agent: AgentContext, runId: string, iteration: number): Promise<string> {
  const reply = await findEntry(agent.database.db, runId, iteration, "reply");
  return typeof reply?.payload.message === "string" ? reply.payload.message : "";
}
