import { codingAgent } from "./coding-agent";
import { markRunStopped } from "./mark-run-stopped";

/** Every function the app serves at /api/inngest. */
export const functions = [codingAgent, markRunStopped];
