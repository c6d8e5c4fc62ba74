import { env } from "../../app/env.server";
import { db } from "../../db";
import { timeStep } from "../../metrics/registry";
import { createAgentContext, type AgentContext } from "../agent/context";
import { runAgentLoop } from "../agent/loop";
import { agentPrompt, agentStop, inngest } from "../client";
import { retryDecision, STEP_RETRIES } from "../retry-policy";
import { recordRunFailure } from "../run-failure";
import { markRunResuming } from "../run-lifecycle";

const { AGENT_RUN_TIMEOUT } = env();

// Built on first use, not at import: importing the functions must stay cheap.
let context: AgentContext | undefined;
const agent = () => (context ??= createAgentContext());

/**
 * The coding agent: one durable run per `agent/prompt`.
 *
 * `start`, then per iteration `think-i` (the model picks an action, saved in
 * agent_entries) and `act-i` (the sandbox runs it, result saved), until the
 * model replies or the iteration limit; then `finish`. Every step is
 * memoized with an explicit id, so after a crash the engine replays finished
 * steps and runs only the rest. Step outputs are a few bytes; the
 * conversation and progress live in Postgres.
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
    // Most errors still get 3 retries; a database that went away gets more, sooner (retry-policy.ts).
    retries: STEP_RETRIES,
    // The builder reads a short reason; the error itself (a query, a stack) goes to the server log.
    onFailure: ({ event, error }) => recordRunFailure(db, event.data.event.data.runId, error),
  },
  async ({ event, step, attempt }) => {
    const { runId } = event.data;
    return runAgentLoop(
      agent(),
      runId,
      (id, fn) =>
        step.run(id, async () => {
          try {
            // A retry runs one step per call (memoized ones replay): this is the step that was interrupted.
            if (attempt > 0) await markRunResuming(agent().database.db, runId, { step: id, attempt: attempt + 1 });
            return await timeStep(id, fn);
          } catch (error) {
            throw retryDecision(error, attempt);
          }
        }) as Promise<Awaited<ReturnType<typeof fn>>>,
    );
  },
);
