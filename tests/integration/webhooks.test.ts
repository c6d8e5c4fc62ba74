/**
 * Completion webhooks through the real engine (decision 025): a run's end
 * sends run/ended, deliver-webhooks POSTs the signed payload to a local
 * receiver, retries on a 500 with backoff, gives up after WEBHOOK_ATTEMPTS,
 * and the run never waits for any of it. WEBHOOK_ALLOW_PRIVATE=1 lets the
 * receiver live on 127.0.0.1; the refusal without it is in
 * webhooks-refused.test.ts.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projects, runs, webhookDeliveries, type WebhookDelivery } from "../../db/schema";
import type { RunEndedPayload } from "../../inngest/webhooks/deliveries";
import { verifySignature } from "../../inngest/webhooks/signature";
import { signedInCookie } from "../support/accounts";
import { createBuilder, createQueuedRun } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver";

let stack: Stack;
let receiver: WebhookReceiver;
let runsApi: typeof import("../../app/models/runs.server");
let webhooksApi: typeof import("../../app/models/webhooks.server");
let lifecycle: typeof import("../../inngest/run-lifecycle");

const ATTEMPTS = 3;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  stack = await startStack({
    env: {
      WEBHOOK_ALLOW_PRIVATE: "1",
      WEBHOOK_ATTEMPTS: String(ATTEMPTS),
      WEBHOOK_RETRY_DELAY: "1s",
      WEBHOOK_TIMEOUT: "2s",
    },
  });
  runsApi = await import("../../app/models/runs.server");
  webhooksApi = await import("../../app/models/webhooks.server");
  lifecycle = await import("../../inngest/run-lifecycle");
  console.log(`[webhooks] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

/** A builder's project with a webhook at `path` on the receiver; its secret as shown once. */
async function projectWithWebhook(path: string) {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  const { webhook, secret } = await webhooksApi.addWebhook(db, project, receiver.url(path));
  return { user, project, webhook, secret };
}

async function deliveriesOf(runId: string): Promise<WebhookDelivery[]> {
  return stack.database.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.runId, runId));
}

/** Polls the run's one delivery until it leaves `pending` (the engine's retries take a few seconds). */
async function settledDelivery(runId: string, timeoutMs = 60_000): Promise<WebhookDelivery> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [delivery] = await deliveriesOf(runId);
    if (delivery && delivery.status !== "pending") return delivery;
    if (Date.now() > deadline) throw new Error(`delivery of run ${runId} still ${delivery?.status ?? "absent"}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function runToEnd(userId: string, projectId: string, turns = [turn.reply("Done.")]) {
  const { db } = stack.database;
  const run = await runsApi.startRun(db, {
    userId,
    projectId,
    input: { prompt: "build it" },
    model: scripted(stack.replay, turns),
  });
  await waitForRunToFinish(stack.database, run);
  return run;
}

describe("completion webhooks", () => {
  it("POSTs one signed run.ended payload that verifies with the secret shown at creation", async () => {
    const { user, project, secret } = await projectWithWebhook("/complete");
    const run = await runToEnd(user.id, project.id, [turn.write("index.html", "<h1>hi</h1>"), turn.reply("Built.")]);
    const delivery = await settledDelivery(run.id);
    expect(delivery).toMatchObject({ status: "delivered", attempts: 1, lastStatusCode: 200, lastError: null });

    const [request] = receiver.received("/complete");
    expect(receiver.received("/complete")).toHaveLength(1);
    expect(verifySignature(secret, request!.body, request!.headers["dyno-signature"] as string)).toMatchObject({
      ok: true,
    });
    expect(verifySignature("whsec_other", request!.body, request!.headers["dyno-signature"] as string).ok).toBe(false);
    expect(request!.headers).toMatchObject({
      "content-type": "application/json",
      "dyno-event": "run.ended",
      "dyno-delivery": delivery.id,
    });
    const payload = JSON.parse(request!.body) as RunEndedPayload;
    const [ended] = await stack.database.db.select().from(runs).where(eq(runs.id, run.id));
    const [titled] = await stack.database.db.select().from(projects).where(eq(projects.id, project.id));
    expect(payload).toMatchObject({
      id: delivery.id,
      type: "run.ended",
      run: {
        id: run.id,
        projectId: project.id,
        status: "complete",
        reason: null,
        startedAt: ended!.startedAt!.toISOString(),
        endedAt: ended!.finishedAt!.toISOString(),
        iterations: 2,
        tokens: { input: ended!.inputTokens, output: ended!.outputTokens },
      },
      project: { id: project.id, title: titled!.title },
    });
    expect(Date.parse(payload.sentAt)).not.toBeNaN();
  });

  it("retries after a 500 and records both attempts once the receiver takes it", async () => {
    receiver.answer("/flaky", [500, 200]);
    const { user, project, secret } = await projectWithWebhook("/flaky");
    const run = await runToEnd(user.id, project.id);
    const delivery = await settledDelivery(run.id);
    expect(delivery).toMatchObject({ status: "delivered", attempts: 2, lastStatusCode: 200, lastError: null });
    const requests = receiver.received("/flaky");
    expect(requests).toHaveLength(2);
    // The same delivery each time, signed afresh.
    expect(new Set(requests.map((r) => r.headers["dyno-delivery"]))).toEqual(new Set([delivery.id]));
    for (const r of requests)
      expect(verifySignature(secret, r.body, r.headers["dyno-signature"] as string).ok).toBe(true);
  });

  it("gives up after WEBHOOK_ATTEMPTS POSTs that all fail, and records the last answer", async () => {
    receiver.answer("/down", [500]);
    const { user, project } = await projectWithWebhook("/down");
    const run = await runToEnd(user.id, project.id);
    const delivery = await settledDelivery(run.id);
    expect(delivery).toMatchObject({
      status: "failed",
      attempts: ATTEMPTS,
      lastStatusCode: 500,
      lastError: "The receiver answered 500.",
    });
    expect(receiver.received("/down")).toHaveLength(ATTEMPTS);
    // Nothing more comes once it has failed.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(receiver.received("/down")).toHaveLength(ATTEMPTS);
  });

  it("delivers a stopped run's end, and a failed one's with its reason (the path the reconciler and onFailure take)", async () => {
    const { db } = stack.database;
    const { user, project } = await projectWithWebhook("/ends");
    const slow = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "slow" },
      model: scripted(stack.replay, [turn.reply("late", { delayMs: 60_000 })]),
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: slow.id,
      until: (r) => r.type === "thinking",
    });
    await runsApi.stopRun(db, { userId: user.id, runId: slow.id });
    expect((await waitForRunToFinish(stack.database, slow)).type).toBe("stopped");
    expect(await settledDelivery(slow.id)).toMatchObject({ status: "delivered", attempts: 1 });

    // A run the engine never had, ended the way the reconciler ends a lost run.
    const lost = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    await lifecycle.failRun(db, lost.id, "The Inngest engine no longer knows this run.");
    expect(await settledDelivery(lost.id)).toMatchObject({ status: "delivered", attempts: 1 });

    const payloads = receiver.received("/ends").map((r) => JSON.parse(r.body) as RunEndedPayload);
    expect(payloads.map((p) => [p.run.id, p.run.status, p.run.reason])).toEqual([
      [slow.id, "stopped", null],
      [lost.id, "failed", "The Inngest engine no longer knows this run."],
    ]);

    // Ending it again (a re-executed closing step) sends the same event: no second delivery.
    await lifecycle.failRun(db, lost.id, "The Inngest engine no longer knows this run.");
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(receiver.received("/ends")).toHaveLength(2);
    expect(await deliveriesOf(lost.id)).toHaveLength(1);
  });

  it("never holds up the run: the next run finishes while the receiver still hangs on the first one's POST", async () => {
    receiver.answer("/hang", ["hang"]);
    const { user, project } = await projectWithWebhook("/hang");
    const first = await runToEnd(user.id, project.id);
    await receiver.waitFor("/hang", 1);
    const second = await runToEnd(user.id, project.id);
    const [ended] = await stack.database.db.select().from(runs).where(eq(runs.id, second.id));
    expect(ended!.status).toBe("complete");
    // The first POST had no answer yet when the second run ended.
    const [pending] = await deliveriesOf(first.id);
    expect(pending).toMatchObject({ status: "pending" });

    const failed = await settledDelivery(first.id);
    expect(failed).toMatchObject({ status: "failed", attempts: ATTEMPTS, lastError: "No answer within 2 s." });
    expect((await settledDelivery(second.id)).status).toBe("failed");
  });

  it("adds a webhook from the project's Webhooks view, shows its secret once, then its deliveries, to its owner only", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const cookie = await signedInCookie(user.id);
    const pageUrl = `${stack.app.url}/projects/${project.id}?view=webhooks`;
    const post = (fields: Record<string, string>, who = cookie) =>
      fetch(pageUrl, { method: "POST", body: new URLSearchParams(fields), headers: { Cookie: who } });

    const added = await post({ intent: "webhook-add", url: receiver.url("/shown") });
    expect(added.status).toBe(200);
    const secret = /data-testid="webhook-secret">(whsec_[A-Za-z0-9_-]+)</.exec(await added.text())?.[1];
    expect(secret).toBeDefined();
    const refused = await post({ intent: "webhook-add", url: "ftp://example.com/" });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("A webhook URL starts with https://");

    const run = await runToEnd(user.id, project.id);
    const delivery = await settledDelivery(run.id);
    const [request] = receiver.received("/shown");
    expect(verifySignature(secret!, request!.body, request!.headers["dyno-signature"] as string).ok).toBe(true);

    const html = await (await fetch(pageUrl, { headers: { Cookie: cookie } })).text();
    expect(html).toContain(receiver.url("/shown"));
    expect(html).toContain('data-delivery-status="delivered"');
    expect(html).not.toContain(secret!); // shown at creation only

    const other = await createBuilder(db);
    const otherCookie = await signedInCookie(other.user.id);
    expect((await fetch(pageUrl, { headers: { Cookie: otherCookie } })).status).toBe(404);
    expect((await post({ intent: "webhook-delete", webhookId: delivery.webhookId }, otherCookie)).status).toBe(404);

    expect((await post({ intent: "webhook-delete", webhookId: delivery.webhookId })).status).toBe(200);
    expect(await webhooksApi.listWebhooks(db, project)).toEqual([]);
  });
});
