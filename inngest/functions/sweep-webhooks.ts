import { env } from "../../app/env.server";
import { db } from "../../db";
import { inngest, runEnded } from "../client";
import { runEndedEventId } from "../webhooks/announce";
import { lostRunEnds } from "../webhooks/sweep";

/** Every 5 minutes: sends `run/ended` again for runs whose first one never arrived (inngest/webhooks/sweep.ts). */
export const sweepWebhooks = inngest.createFunction(
  {
    id: "sweep-webhooks",
    name: "Re-send lost run ends to webhooks",
    triggers: [{ cron: "*/5 * * * *" }],
    concurrency: [{ limit: 1 }],
  },
  async ({ step }) => {
    const lost = await step.run("find", () => lostRunEnds(db, env()));
    if (lost.length === 0) return { resent: 0 };
    await step.sendEvent(
      "resend",
      lost.map((r) =>
        runEnded.create({ runId: r.runId, projectId: r.projectId, status: r.status }, { id: runEndedEventId(r.runId) }),
      ),
    );
    return { resent: lost.length };
  },
);
