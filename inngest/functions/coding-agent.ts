import { NonRetriableError } from "inngest";
import { env } from "../../app/env.server";
import { db } from "../../db";
import { agentPrompt, agentStop, inngest } from "../client";
import { beginIteration, completeRun, failRun, markRunStarted, markRunStopped, RunNotFoundError } from "../run-lifecycle";

const { AGENT_RUN_TIMEOUT, AGENT_PLACEHOLDER_STEP_MS } = env();

/**
 * The coding agent: one durable run per `agent/prompt`.
 *
 * Each iteration is a memoized step with an explicit id, so after a crash
 * the engine replays finished steps from its state and runs only the rest.
 * Step outputs stay tiny; everything the UI shows is in Postgres.
 *
 * Foundation skeleton: an iteration is a placeholder that records its
 * progress and waits AGENT_PLACEHOLDER_STEP_MS. The model (BAML) and the
 * sandbox replace it in the agent issue.
 */
export const codingAgent = inngest.createFunction(
  {
    id: "coding-agent",
    name: "Coding agent",
    triggers: [agentPrompt],
    cancelOn: [{ event: agentStop, if: "async.data.runId == event.data.runId" }],
    // One run at a time per project; later prompts queue behind it.
    concurrency: [{ limit: 1, key: "event.data.projectId" }],
    timeouts: { finish: AGENT_RUN_TIMEOUT as `${number}${"s" | "m" | "h" | "d"}` },
    retries: 3,
    onFailure: async ({ event, error }) => {
      const runId = event.data.event.data.runId;
      try {
        await failRun(db, runId, error.message || "The run failed.");
      } catch (failure) {
        // An event for a run that does not exist has nothing to mark.
        if (!(failure instanceof RunNotFoundError)) throw failure;
      }
    },
  },
  async ({ event, step }) => {
    const { runId } = event.data;

    const run = await step.run("start", async () => {
      try {
        return await markRunStarted(db, runId);
      } catch (error) {
        if (error instanceof RunNotFoundError) throw new NonRetriableError(error.message);
        throw error;
      }
    });
    if (!run.active) {
      // Stopped while queued, before the engine's cancel landed: end it here.
      if (run.status === "stopping") await step.run("stopped", () => markRunStopped(db, runId));
      return { runId, skipped: `run was ${run.status} before it started` };
    }

    for (let iteration = 1; iteration <= run.maxIterations; iteration++) {
      const { proceed } = await step.run(`iteration-${iteration}`, async () => {
        if (!(await beginIteration(db, run, iteration, { placeholder: true }))) return { proceed: false };
        await new Promise((resolve) => setTimeout(resolve, AGENT_PLACEHOLDER_STEP_MS));
        return { proceed: true };
      });
      if (!proceed) {
        // A stop was recorded before this iteration began; the engine's
        // cancel may not have landed yet, so end the run here.
        await step.run("stopped", () => markRunStopped(db, runId));
        return { runId, stoppedBefore: iteration };
      }
    }

    await step.run("finish", () =>
      completeRun(db, runId, `Finished ${run.maxIterations} placeholder iteration(s). The model arrives with the agent issue.`),
    );
    return { runId, iterations: run.maxIterations };
  },
);
