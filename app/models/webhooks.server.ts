/**
 * A project's completion webhooks (decision 025): adding one (the URL
 * checked, including where it resolves to, and a new secret shown once),
 * listing them with their latest deliveries, deleting one. The route checks
 * that the project is the builder's before anything here runs.
 */
import { and, count, desc, eq } from "drizzle-orm";
import type { Db } from "../../db/client";
import { pgSafeText } from "../../db/pg-safe";
import { runs, webhookDeliveries, webhooks, type Project, type WebhookDeliveryStatus } from "../../db/schema";
import { parseWebhookUrl, resolveWebhookTarget, WebhookUrlError } from "../../inngest/webhooks/address";
import { newWebhookSecret, sealSecret } from "../../inngest/webhooks/secret-box";
import { sessionSecret } from "../auth/secret.server";
import { env } from "../env.server";
import { isUuid } from "./runs.server";

export const MAX_WEBHOOKS_PER_PROJECT = 5;
/** Deliveries listed under each webhook. */
const RECENT_DELIVERIES = 5;

export { WebhookUrlError } from "../../inngest/webhooks/address";

export interface WebhookDeliveryView {
  id: string;
  runId: string;
  runPrompt: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  lastAttemptAt: string | null;
}

export interface WebhookView {
  id: string;
  url: string;
  createdAt: string;
  deliveries: WebhookDeliveryView[];
}

/**
 * Adds a webhook; its secret comes back this once (it is stored sealed).
 * Throws WebhookUrlError with a sentence for the builder when the URL is
 * refused (not http(s), a private target, a host that does not resolve) or
 * the project has its maximum.
 */
export async function addWebhook(
  db: Db,
  project: Pick<Project, "id">,
  urlInput: string,
): Promise<{ webhook: WebhookView; secret: string }> {
  const url = parseWebhookUrl(urlInput);
  await resolveWebhookTarget(url, { allowPrivate: env().WEBHOOK_ALLOW_PRIVATE });
  const [{ n } = { n: 0 }] = await db.select({ n: count() }).from(webhooks).where(eq(webhooks.projectId, project.id));
  if (n >= MAX_WEBHOOKS_PER_PROJECT) {
    throw new WebhookUrlError(`A project has at most ${MAX_WEBHOOKS_PER_PROJECT} webhooks: delete one first.`);
  }
  const secret = newWebhookSecret();
  const [row] = await db
    .insert(webhooks)
    .values({ projectId: project.id, url: pgSafeText(url.href), secret: sealSecret(secret, sessionSecret()) })
    .returning();
  if (!row) throw new Error("webhook insert returned no row");
  return { webhook: { id: row.id, url: row.url, createdAt: row.createdAt.toISOString(), deliveries: [] }, secret };
}

/** Deletes one of the project's webhooks (with its deliveries); false when it has none by that id. */
export async function deleteWebhook(db: Db, project: Pick<Project, "id">, webhookId: unknown): Promise<boolean> {
  if (typeof webhookId !== "string" || !isUuid(webhookId)) return false;
  const deleted = await db
    .delete(webhooks)
    .where(and(eq(webhooks.id, webhookId), eq(webhooks.projectId, project.id)))
    .returning({ id: webhooks.id });
  return deleted.length > 0;
}

/** The project's webhooks, oldest first, each with its latest deliveries (newest first). */
export async function listWebhooks(db: Db, project: Pick<Project, "id">): Promise<WebhookView[]> {
  const rows = await db
    .select()
    .from(webhooks)
    .where(eq(webhooks.projectId, project.id))
    .orderBy(webhooks.createdAt)
    .limit(MAX_WEBHOOKS_PER_PROJECT * 2);
  if (rows.length === 0) return [];
  const deliveries = await Promise.all(
    rows.map((w) =>
      db
        .select({ delivery: webhookDeliveries, prompt: runs.prompt })
        .from(webhookDeliveries)
        .innerJoin(runs, eq(runs.id, webhookDeliveries.runId))
        .where(eq(webhookDeliveries.webhookId, w.id))
        .orderBy(desc(webhookDeliveries.createdAt))
        .limit(RECENT_DELIVERIES),
    ),
  );
  return rows.map((w, i) => ({
    id: w.id,
    url: w.url,
    createdAt: w.createdAt.toISOString(),
    deliveries: deliveries[i]!.map(({ delivery: d, prompt }) => ({
      id: d.id,
      runId: d.runId,
      runPrompt: prompt.length > 80 ? `${prompt.slice(0, 79)}…` : prompt,
      status: d.status,
      attempts: d.attempts,
      lastStatusCode: d.lastStatusCode,
      lastError: d.lastError,
      lastAttemptAt: d.lastAttemptAt?.toISOString() ?? null,
    })),
  }));
}

export type WebhookActionResult =
  | { ok: true; intent: "webhook-add"; webhookId: string; url: string; secret: string }
  | { ok: true; intent: "webhook-delete" }
  | { ok: false; intent: "webhook-add" | "webhook-delete"; error: string; status: number };

export const WEBHOOK_INTENTS = ["webhook-add", "webhook-delete"] as const;

export function isWebhookIntent(intent: unknown): intent is (typeof WEBHOOK_INTENTS)[number] {
  return WEBHOOK_INTENTS.includes(intent as (typeof WEBHOOK_INTENTS)[number]);
}

/** The Webhooks view's form intents. */
export async function handleWebhookAction(
  db: Db,
  project: Pick<Project, "id">,
  form: FormData,
): Promise<WebhookActionResult> {
  const intent = form.get("intent");
  if (intent === "webhook-delete") {
    if (await deleteWebhook(db, project, form.get("webhookId"))) return { ok: true, intent };
    return { ok: false, intent, error: "That webhook does not exist (any more).", status: 404 };
  }
  const url = form.get("url");
  try {
    const { webhook, secret } = await addWebhook(db, project, typeof url === "string" ? url : "");
    return { ok: true, intent: "webhook-add", webhookId: webhook.id, url: webhook.url, secret };
  } catch (error) {
    if (!(error instanceof WebhookUrlError)) throw error;
    return { ok: false, intent: "webhook-add", error: error.message, status: 400 };
  }
}
