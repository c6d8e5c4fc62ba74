import { codingAgent } from "./coding-agent";
import { deliverWebhooks } from "./deliver-webhooks";
import { exportHistory } from "./export-history";
import { markRunStopped } from "./mark-run-stopped";
import { sweepWebhooks } from "./sweep-webhooks";

/** Every function the app serves at /api/inngest. */
export const functions = [codingAgent, markRunStopped, deliverWebhooks, sweepWebhooks, exportHistory];
