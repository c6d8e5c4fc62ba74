import { durationMs, env } from "../../app/env.server";
import { db } from "../../db";
import { inngest, INNGEST_APP_ID } from "../client";
import { markRunCancelled } from "../run-lifecycle";
import { codingAgent } from "./coding-agent";

/**
 * cancelOn ends a run between steps without running any code of ours, and
 * onFailure does not fire on cancellation, so the engine's
 * `inngest/function.cancelled` event is where a cancelled run is recorded.
 */
export const markRunStopped = inngest.createFunction(
  {
    id: "mark-run-stopped",
    name: "Mark run stopped",
    triggers: [
      {
        event: "inngest/function.cancelled",
        if: `event.data.function_id == '${INNGEST_APP_ID}-${codingAgent.id()}'`,
      },
    ],
    retries: 5,
  },
  async ({ event, step }) => {
    const original = (event.data as { event?: { data?: { runId?: unknown } } }).event;
    const runId = original?.data?.runId;
    if (typeof runId !== "string") return { skipped: "no runId on the cancelled run's event" };
    const timeout = env().AGENT_RUN_TIMEOUT;
    await step.run("mark-stopped", () => markRunCancelled(db, runId, { timeout, timeoutMs: durationMs(timeout) }));
    return { runId };
  },
);
