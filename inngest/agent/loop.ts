/**
 * The agent loop, written once against a step runner: the durable function
 * passes Inngest's `step.run` (each call memoized under its id), the
 * benchmark passes a plain call, so both run exactly the same sequence.
 */
import { completeRun, failRun, markRunStopped } from "../run-lifecycle";
import { compact } from "./compact";
import type { AgentContext } from "./context";
import { act, nameProject, savedReply, startAgentRun, think } from "./steps";

/** Runs `fn` as the step `id`. Outputs must be small JSON values. */
export type StepRunner = <T>(id: string, fn: () => Promise<T>) => Promise<T>;

export type LoopOutcome =
  { runId: string; skipped: string } | { runId: string; stoppedAt: number } | { runId: string; iterations: number };

export async function runAgentLoop(agent: AgentContext, runId: string, step: StepRunner): Promise<LoopOutcome> {
  const { db } = agent.database;
  const stopped = async (atIteration: number) => {
    // The stop was heard inside a step; the engine's cancel may not have landed yet.
    await step("stopped", () => markRunStopped(db, runId));
    return { runId, stoppedAt: atIteration };
  };

  const run = await step("start", () => startAgentRun(agent, runId));
  if (!run.active) {
    // Stopped while queued, before the engine's cancel landed: end it here.
    if (run.status === "stopping") return stopped(0);
    return { runId, skipped: `run was ${run.status} before it started` };
  }
  if (run.needsTitle) await step("title", () => nameProject(agent, run));

  for (let iteration = 1; iteration <= run.maxIterations; iteration++) {
    let thought = await step(`think-${iteration}`, () => think(agent, run, iteration));
    if (thought.next === "compact") {
      // The prompt is over its budget: its own step folds the older turns into a summary, then the think is asked again.
      const { through } = thought;
      const compacted = await step(`compact-${iteration}`, () => compact(agent, run, iteration, through));
      if (compacted.next === "stop") return stopped(iteration);
      thought = await step(`think-${iteration}-compacted`, () => think(agent, run, iteration, { compacted: true }));
    }
    if (thought.next === "fail") {
      const { reason } = thought;
      await step("finish", () => failRun(db, runId, reason));
      return { runId, iterations: iteration };
    }
    if (thought.next === "stop") return stopped(iteration);
    if (thought.next === "reply") {
      await step("finish", async () => completeRun(db, runId, await savedReply(agent, runId, iteration)));
      return { runId, iterations: iteration };
    }
    if (thought.next === "act") {
      const acted = await step(`act-${iteration}`, () => act(agent, run, iteration));
      if (acted.next === "stop") return stopped(iteration);
    }
  }

  await step("finish", () =>
    failRun(
      db,
      runId,
      `The agent used all ${run.maxIterations} iterations without finishing. Send another prompt to continue.`,
    ),
  );
  return { runId, iterations: run.maxIterations };
}
