import { Inngest } from "inngest";
import { env, isInngestDev } from "../app/env.server";
import { StepStateMeter } from "./step-state";

export { agentPrompt, agentStop, runEnded } from "./events";

export const INNGEST_APP_ID = "dyno";

const config = env();
const { INNGEST_DEV, INNGEST_BASE_URL, INNGEST_EVENT_KEY, INNGEST_SIGNING_KEY } = config;

/**
 * The Inngest client. With INNGEST_DEV set it talks to a local engine (the
 * dev server `npm run dev` starts, or INNGEST_BASE_URL); without it, to
 * Inngest Cloud or a self-hosted `inngest start` with event and signing keys.
 */
const isDev = isInngestDev(config);

export const inngest = new Inngest({
  id: INNGEST_APP_ID,
  isDev,
  // The SDK also accepts the engine's URL in INNGEST_DEV.
  baseUrl: INNGEST_BASE_URL ?? (isDev && /^https?:\/\//.test(INNGEST_DEV ?? "") ? INNGEST_DEV : undefined),
  eventKey: INNGEST_EVENT_KEY,
  signingKey: INNGEST_SIGNING_KEY,
  middleware: [StepStateMeter],
});
