/**
 * The safety net for a lost `run/ended`: the closing step sends it best
 * effort (announce.ts), so an engine that was unreachable at that moment
 * would leave the run's webhooks untold. Every few minutes the sweep finds
 * runs that ended a while ago (long enough for their event to have been
 * planned), within the last day, with a webhook that existed when they
 * ended, and not one delivery row: their event is sent again, under the same
 * id, so one that did arrive is not delivered twice (the function's
 * idempotency key and the rows' unique (webhook, run)).
 */
import { and, asc, eq, exists, gt, inArray, lt, notExists, or, sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { FINISHED_RUN_STATUSES } from "../../db/run-status";
import { runs, webhookDeliveries, webhooks } from "../../db/schema";
import { OPERATOR_WEBHOOK_ID, syncOperatorWebhook, type WebhookSettings } from "./deliveries";

/** How long after its end a run without deliveries counts as lost (its event may still be on its way). */
export const SWEEP_SETTLE_MS = 2 * 60_000;
/** How far back the sweep looks (the engine's event idempotency window). */
export const SWEEP_WINDOW_MS = 24 * 3_600_000;
export const SWEEP_BATCH = 100;

export interface LostRunEnd {
  runId: string;
  projectId: string;
  status: "complete" | "failed" | "stopped";
}

export async function lostRunEnds(
  db: Db,
  settings: Pick<WebhookSettings, "DYNO_WEBHOOK_URL">,
  { now = new Date() }: { now?: Date } = {},
): Promise<LostRunEnd[]> {
  if (settings.DYNO_WEBHOOK_URL) await syncOperatorWebhook(db, settings.DYNO_WEBHOOK_URL);
  const rows = await db
    .select({ runId: runs.id, projectId: runs.projectId, status: runs.status })
    .from(runs)
    .where(
      and(
        inArray(runs.status, [...FINISHED_RUN_STATUSES]),
        gt(runs.finishedAt, new Date(now.getTime() - SWEEP_WINDOW_MS)),
        lt(runs.finishedAt, new Date(now.getTime() - SWEEP_SETTLE_MS)),
        notExists(
          db
            .select({ one: sql`1` })
            .from(webhookDeliveries)
            .where(eq(webhookDeliveries.runId, runs.id)),
        ),
        exists(
          db
            .select({ one: sql`1` })
            .from(webhooks)
            .where(
              and(
                or(
                  eq(webhooks.projectId, runs.projectId),
                  settings.DYNO_WEBHOOK_URL ? eq(webhooks.id, OPERATOR_WEBHOOK_ID) : undefined,
                ),
                lt(webhooks.createdAt, runs.finishedAt),
              ),
            ),
        ),
      ),
    )
    .orderBy(asc(runs.finishedAt))
    .limit(SWEEP_BATCH);
  return rows as LostRunEnd[];
}
