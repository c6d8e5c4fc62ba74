import { RetryAfterError } from "inngest";
import { sessionSecret } from "../../app/auth/secret.server";
import { durationMs, env } from "../../app/env.server";
import { db } from "../../db";
import { inngest, runEnded } from "../client";
import { attemptDelivery, giveUpDelivery, planDeliveries, retryDelayMs } from "../webhooks/deliveries";

const settings = env();
const { WEBHOOK_ATTEMPTS } = settings;

/**
 * Delivers a run's end to its webhooks (decision 025): a step makes the
 * delivery rows, then one step per webhook, side by side, POSTs the signed
 * payload. A failed POST is recorded and the step asks the engine to retry
 * it later (RetryAfterError: WEBHOOK_RETRY_DELAY, then 4 times longer each
 * time); after WEBHOOK_ATTEMPTS POSTs the delivery is failed. This is its
 * own function, started by an event: a slow, failing or hanging receiver
 * never holds up or fails the run.
 */
export const deliverWebhooks = inngest.createFunction(
  {
    id: "deliver-webhooks",
    name: "Deliver webhooks",
    triggers: [runEnded],
    // A re-sent run/ended (a re-executed closing step) starts no second delivery run for 24 h; the rows say the rest.
    idempotency: "event.data.runId",
    // The POSTs are counted in the database; a couple more engine retries cover a step that failed for another reason.
    retries: Math.min(20, WEBHOOK_ATTEMPTS + 1) as 20,
  },
  async ({ event, step }) => {
    const { runId } = event.data;
    const deliveries = await step.run("plan", () => planDeliveries(db, runId, settings));
    const outcomes = await Promise.all(
      deliveries.map(async (deliveryId) => {
        try {
          return await step.run(`deliver-${deliveryId}`, async () => {
            const result = await attemptDelivery(db, deliveryId, {
              settings,
              sessionSecret,
              timeoutMs: durationMs(settings.WEBHOOK_TIMEOUT),
            });
            if (result.status !== "pending") return { deliveryId, status: result.status, attempts: result.attempts };
            const delayMs = retryDelayMs(result.attempts, durationMs(settings.WEBHOOK_RETRY_DELAY));
            throw new RetryAfterError(
              `${result.error ?? "Not delivered"} Trying again in ${delayMs / 1000} s.`,
              delayMs,
            );
          });
        } catch (error) {
          // The engine ran out of retries first (errors of our own, not the receiver's, used them up).
          const message = error instanceof Error ? error.message : String(error);
          await step.run(`give-up-${deliveryId}`, () => giveUpDelivery(db, deliveryId, message));
          return { deliveryId, status: "failed" as const, attempts: -1 };
        }
      }),
    );
    return { runId, outcomes };
  },
);
