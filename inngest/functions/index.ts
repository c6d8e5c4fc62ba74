import { codingAgent } from "./coding-agent";
import { deliverWebhooks } from "./deliver-webhooks";
import { markRunStopped } from "./mark-run-stopped";
import { sweepWebhooks } from "./sweep-webhooks";

/** Every function the app serves at /api/inngest. */
export const functions = [codingAgent, markRunStopped, deliverWebhooks, sweepWebhooks];
