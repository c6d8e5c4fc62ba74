/**
 * compact-i: folds the conversation's older turns into a summary before
 * think-i asks the model (the think step found the prompt over budget and
 * named the cut: compaction.ts). The summary is one more agent_entries row,
 * (run, iteration, "summary"); the entries it covers stay. Idempotent: a
 * step re-run after the summary was saved returns it without asking again.
 */
import { eq } from "drizzle-orm";
import { appendRunEvent } from "../../db/run-events";
import { runs, type AgentEntry } from "../../db/schema";
import { RunFailedError, RunRetryableError } from "../run-failure";
import type { AgentContext } from "./context";
import { estimateTokens } from "./context-budget";
import { assistantTurnsIn, latestSummary, renderEntries, verbatimEntries } from "./conversation";
import { findEntry, projectEntries, recountTokens, saveEntry } from "./entries";
import { isModelError, isPermanentModelError, providerMessage } from "./model/next-action";
import { summarizeSession } from "./model/summarize";
import type { AgentRun } from "./steps";
import { stoppedBy, watchForStop } from "./stop-signal";

export type Compacted = { next: "think" | "stop" };

/** Thrown inside the transaction to undo it when the run stopped meanwhile. */
class RunNotRunning extends Error {}

/** The entries after the previous summary, through `through`: what this compaction folds in. */
export function entriesToCompact(entries: readonly AgentEntry[], through: number): AgentEntry[] {
  const verbatim = verbatimEntries(entries);
  const end = verbatim.findIndex((entry) => entry.id === through);
  return end < 0 ? [] : verbatim.slice(0, end + 1);
}

export async function compact(
  agent: AgentContext,
  run: AgentRun,
  iteration: number,
  through: number,
): Promise<Compacted> {
  const { db } = agent.database;
  if (await findEntry(db, run.id, iteration, "summary")) return { next: "think" };

  const entries = await projectEntries(db, run.projectId);
  const previous = latestSummary(entries);
  const folded = entriesToCompact(entries, through);
  if (folded.length === 0) return { next: "think" };
  // Every result folded in is sent trimmed: the request stays within the budget the turns had.
  const trimmed = new Set(folded.filter((entry) => entry.kind === "result").map((entry) => entry.id));
  // Images are not summarized: each prompt's text names its images, and that line is what the summary keeps.
  const turns = renderEntries(folded, { trimmed }).map(({ role, content }) => ({ role, content }));
  const previousTurns = Number(previous?.payload.summarizedTurns) || 0;

  const watch = watchForStop(agent.database, run);
  // Read after the watch started: a stop recorded before it is seen here, one after it by the watch.
  const [snapshot] = await db.select({ todos: runs.todos, status: runs.status }).from(runs).where(eq(runs.id, run.id));
  if (snapshot?.status !== "running") {
    watch.close();
    return { next: "stop" };
  }
  const startedAt = Date.now();
  let summary: string;
  let usage;
  try {
    const { config, registry } = await agent.model(run);
    const timeout = AbortSignal.timeout(agent.modelTimeoutMs);
    try {
      ({ summary, usage } = await summarizeSession({
        registry,
        previousSummary: typeof previous?.payload.summary === "string" ? previous.payload.summary : undefined,
        turns,
        todos: snapshot?.todos ?? [],
        signal: AbortSignal.any([watch.signal, timeout]),
      }));
    } catch (error) {
      if (stoppedBy(watch.signal)) return { next: "stop" };
      if (timeout.aborted)
        throw new RunRetryableError(
          `The model did not summarize the conversation within ${agent.modelTimeoutMs / 1000} s.`,
        );
      if (isPermanentModelError(error)) {
        throw new RunFailedError(
          `The model server refused the summary request (${config.label}): ${providerMessage(error)}`,
        );
      }
      if (isModelError(error)) {
        throw new RunRetryableError(`The model server did not answer (${config.label}): ${providerMessage(error)}`, {
          cause: error,
        });
      }
      throw error;
    }
    if (stoppedBy(watch.signal)) return { next: "stop" };
  } finally {
    watch.close();
  }

  const summarizedTurns = previousTurns + assistantTurnsIn(folded);
  try {
    await db.transaction(async (tx) => {
      await saveEntry(tx, {
        runId: run.id,
        projectId: run.projectId,
        iteration,
        kind: "summary",
        payload: { summary, coversThrough: through, summarizedTurns, entries: folded.length, usage },
      });
      const written = await appendRunEvent(tx, {
        runId: run.id,
        projectId: run.projectId,
        type: "compacted",
        dedupeKey: `compacted-${iteration}`,
        data: {
          iteration,
          turns: assistantTurnsIn(folded),
          summarizedTurns,
          summaryTokens: estimateTokens(summary),
          foldedTokens: turns.reduce((sum, turn) => sum + estimateTokens(turn.content), 0),
          ms: Date.now() - startedAt,
        },
        onlyIfStatus: ["running"],
      });
      if (!written) throw new RunNotRunning();
      await recountTokens(tx, run.id);
    });
  } catch (error) {
    if (error instanceof RunNotRunning) return { next: "stop" };
    throw error;
  }
  return { next: "think" };
}
