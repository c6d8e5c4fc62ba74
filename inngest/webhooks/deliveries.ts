/**
 * Completion webhooks, the database side: which webhooks hear a run's end,
 * the delivery rows (one per webhook and run), and one attempt at a
 * delivery, recorded as it ends. The Inngest function deliver-webhooks
 * (inngest/functions/deliver-webhooks.ts) calls these from its steps.
 */
import { and, eq, isNull, or, sql } from "drizzle-orm";
import type { Env } from "../../app/env.server";
import type { Db } from "../../db/client";
import { pgSafeText } from "../../db/pg-safe";
import { isFinished } from "../../db/run-status";
import { projects, runs, webhookDeliveries, webhooks, type Run, type WebhookDeliveryStatus } from "../../db/schema";
import { parseWebhookUrl, resolveWebhookTarget, WebhookUrlError, type Resolver } from "./address";
import { postWebhook } from "./post";
import { openSecret, SecretUnreadableError } from "./secret-box";
import { SIGNATURE_HEADER, signatureHeader } from "./signature";

export const RUN_ENDED = "run.ended";

/** The operator's webhook (DYNO_WEBHOOK_URL): one fixed row, so its deliveries are unique per run like any other. */
export const OPERATOR_WEBHOOK_ID = "00000000-0000-4000-8000-00000000d1e0";

export type WebhookSettings = Pick<
  Env,
  | "DYNO_WEBHOOK_URL"
  | "DYNO_WEBHOOK_SECRET"
  | "WEBHOOK_ALLOW_PRIVATE"
  | "WEBHOOK_TIMEOUT"
  | "WEBHOOK_ATTEMPTS"
  | "WEBHOOK_RETRY_DELAY"
>;

/** Whether a run of this project has anyone to tell: a webhook of its own, or the operator's. */
export async function hasWebhooks(db: Db, projectId: string, settings: WebhookSettings): Promise<boolean> {
  if (settings.DYNO_WEBHOOK_URL) return true;
  const [row] = await db.select({ id: webhooks.id }).from(webhooks).where(eq(webhooks.projectId, projectId)).limit(1);
  return row !== undefined;
}

/** Keeps the operator's row at the URL the environment names now. */
export async function syncOperatorWebhook(db: Db, url: string): Promise<void> {
  await db
    .insert(webhooks)
    .values({ id: OPERATOR_WEBHOOK_ID, projectId: null, url, secret: null })
    .onConflictDoUpdate({ target: webhooks.id, set: { url } });
}

/**
 * Makes the run's delivery rows (the project's webhooks, and the operator's
 * when set; an existing row is kept as it is) and returns those still
 * pending. Nothing for a run that has not ended.
 */
export async function planDeliveries(db: Db, runId: string, settings: WebhookSettings): Promise<string[]> {
  const [run] = await db.select().from(runs).where(eq(runs.id, runId));
  if (!run || !isFinished(run.status)) return [];
  if (settings.DYNO_WEBHOOK_URL) await syncOperatorWebhook(db, settings.DYNO_WEBHOOK_URL);
  const targets = await db
    .select({ id: webhooks.id })
    .from(webhooks)
    .where(
      or(
        eq(webhooks.projectId, run.projectId),
        settings.DYNO_WEBHOOK_URL ? and(isNull(webhooks.projectId), eq(webhooks.id, OPERATOR_WEBHOOK_ID)) : undefined,
      ),
    );
  if (targets.length > 0) {
    await db
      .insert(webhookDeliveries)
      .values(targets.map((t) => ({ webhookId: t.id, runId, event: RUN_ENDED })))
      .onConflictDoNothing({ target: [webhookDeliveries.webhookId, webhookDeliveries.runId] });
  }
  const pending = await db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.runId, runId), eq(webhookDeliveries.status, "pending")));
  return pending.map((d) => d.id);
}

export interface RunEndedPayload {
  /** The delivery's id (also the Dyno-Delivery header): the same on every retry, for receivers to de-duplicate. */
  id: string;
  type: typeof RUN_ENDED;
  run: {
    id: string;
    projectId: string;
    status: "complete" | "failed" | "stopped";
    /** Why it failed (the sentence the builder sees); null otherwise. */
    reason: string | null;
    startedAt: string | null;
    endedAt: string | null;
    iterations: number;
    tokens: { input: number; output: number };
  };
  project: { id: string; title: string };
  sentAt: string;
}

export function runEndedPayload(
  deliveryId: string,
  run: Run,
  project: { id: string; title: string },
  now: Date,
): RunEndedPayload {
  return {
    id: deliveryId,
    type: RUN_ENDED,
    run: {
      id: run.id,
      projectId: run.projectId,
      status: run.status as RunEndedPayload["run"]["status"],
      reason: run.status === "failed" ? run.error : null,
      startedAt: run.startedAt?.toISOString() ?? null,
      endedAt: run.finishedAt?.toISOString() ?? null,
      iterations: run.iteration,
      tokens: { input: run.inputTokens, output: run.outputTokens },
    },
    project: { id: project.id, title: project.title },
    sentAt: now.toISOString(),
  };
}

/** The wait before retry `n` (1-based): WEBHOOK_RETRY_DELAY, then 4 times longer each time, at most an hour. */
export function retryDelayMs(retry: number, baseMs: number): number {
  return Math.min(baseMs * 4 ** Math.max(0, retry - 1), 3_600_000);
}

export interface AttemptResult {
  status: WebhookDeliveryStatus;
  attempts: number;
  /** Set while pending: another attempt is due. */
  error?: string;
}

export interface AttemptOptions {
  settings: WebhookSettings;
  sessionSecret: () => string;
  timeoutMs: number;
  resolve?: Resolver;
  now?: () => Date;
}

/**
 * One POST of a pending delivery, recorded: the attempt count, the answer's
 * status code or the error, and the new status (delivered; failed once the
 * attempts are used up, or at once for a target that is refused or a secret
 * that cannot be read: no retry changes those). A delivery that is no longer
 * pending is left alone.
 */
export async function attemptDelivery(db: Db, deliveryId: string, options: AttemptOptions): Promise<AttemptResult> {
  const { settings, now = () => new Date() } = options;
  const [row] = await db
    .select({ delivery: webhookDeliveries, webhook: webhooks, run: runs, project: projects })
    .from(webhookDeliveries)
    .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
    .innerJoin(runs, eq(runs.id, webhookDeliveries.runId))
    .innerJoin(projects, eq(projects.id, runs.projectId))
    .where(eq(webhookDeliveries.id, deliveryId));
  // Deleted (its webhook or run went): nothing to send.
  if (!row) return { status: "failed", attempts: 0 };
  const { delivery, webhook, run, project } = row;
  if (delivery.status !== "pending") return { status: delivery.status, attempts: delivery.attempts };

  let outcome: { ok: boolean; statusCode?: number; error?: string; final?: boolean };
  try {
    const operator = webhook.id === OPERATOR_WEBHOOK_ID;
    const secret = operator
      ? settings.DYNO_WEBHOOK_SECRET
      : webhook.secret && openSecret(webhook.secret, options.sessionSecret());
    if (!secret) throw new SecretUnreadableError();
    // Checked again at send: the host may resolve elsewhere now than when the webhook was added. The operator
    // chose their own URL (often an internal service), so only a builder's is held to public addresses.
    const target = await resolveWebhookTarget(parseWebhookUrl(webhook.url), {
      allowPrivate: settings.WEBHOOK_ALLOW_PRIVATE || operator,
      resolve: options.resolve,
    });
    const body = JSON.stringify(runEndedPayload(delivery.id, run, project, now()));
    outcome = await postWebhook(target, {
      body,
      timeoutMs: options.timeoutMs,
      headers: {
        [SIGNATURE_HEADER]: signatureHeader(secret, body, Math.floor(now().getTime() / 1000)),
        "Dyno-Delivery": delivery.id,
        "Dyno-Event": RUN_ENDED,
        "User-Agent": "Dyno-Webhooks/1",
      },
    });
  } catch (error) {
    if (!(error instanceof WebhookUrlError || error instanceof SecretUnreadableError)) throw error;
    outcome = { ok: false, error: error.message, final: true };
  }

  const attempts = delivery.attempts + 1;
  const status: WebhookDeliveryStatus = outcome.ok
    ? "delivered"
    : outcome.final || attempts >= settings.WEBHOOK_ATTEMPTS
      ? "failed"
      : "pending";
  const at = now();
  await db
    .update(webhookDeliveries)
    .set({
      status,
      attempts: sql`${webhookDeliveries.attempts} + 1`,
      lastStatusCode: outcome.statusCode ?? null,
      lastError: outcome.error ? pgSafeText(outcome.error.slice(0, 500)) : null,
      lastAttemptAt: at,
      deliveredAt: outcome.ok ? at : null,
    })
    .where(and(eq(webhookDeliveries.id, delivery.id), eq(webhookDeliveries.status, "pending")));
  return { status, attempts, error: outcome.error };
}

/** Records a delivery failed with `error` when the engine gave up on it before the attempts ran out. */
export async function giveUpDelivery(db: Db, deliveryId: string, error: string): Promise<void> {
  await db
    .update(webhookDeliveries)
    .set({ status: "failed", lastError: pgSafeText(error.slice(0, 500)) })
    .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.status, "pending")));
}
