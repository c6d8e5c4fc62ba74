import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runs, webhookDeliveries, webhooks } from "../../db/schema";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder, createQueuedRun } from "../../tests/support/fixtures";
import { startWebhookReceiver, type WebhookReceiver } from "../../tests/support/webhook-receiver";
import { attemptDelivery, OPERATOR_WEBHOOK_ID, planDeliveries, type WebhookSettings } from "./deliveries";
import { sealSecret } from "./secret-box";
import { verifySignature } from "./signature";
import { lostRunEnds } from "./sweep";

const SESSION_SECRET = "k".repeat(32);
const OPERATOR_SECRET = "operator-secret-0123456789";

let receiver: WebhookReceiver;
beforeAll(async () => {
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  await receiver?.close();
});

const settings = (extra: Partial<WebhookSettings> = {}): WebhookSettings => ({
  DYNO_WEBHOOK_URL: undefined,
  DYNO_WEBHOOK_SECRET: undefined,
  WEBHOOK_ALLOW_PRIVATE: true,
  WEBHOOK_TIMEOUT: "2s",
  WEBHOOK_ATTEMPTS: 3,
  WEBHOOK_RETRY_DELAY: "1s",
  ...extra,
});
const attempt = (s: WebhookSettings, extra = {}) => ({
  settings: s,
  sessionSecret: () => SESSION_SECRET,
  timeoutMs: 2_000,
  ...extra,
});

describe.each(availableDrivers())("webhook deliveries on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  /** The receiver is shared by both drivers' runs: each driver has its own paths. */
  const at = (path: string) => `/${driver}${path}`;

  async function endedRunWithWebhook(path: string, secret = "whsec_project") {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const [webhook] = await db
      .insert(webhooks)
      .values({ projectId: project.id, url: receiver.url(at(path)), secret: sealSecret(secret, SESSION_SECRET) })
      .returning();
    return { db, user, project, run, webhook: webhook!, secret };
  }
  const end = (db: TestDatabase["database"]["db"], runId: string) =>
    db.update(runs).set({ status: "complete", finishedAt: new Date() }).where(eq(runs.id, runId));

  it("plans nothing for a run that has not ended, then one delivery per webhook, the operator's included, never twice", async () => {
    const { db, run, webhook } = await endedRunWithWebhook("/plan");
    const operator = settings({
      DYNO_WEBHOOK_URL: receiver.url(at("/operator")),
      DYNO_WEBHOOK_SECRET: OPERATOR_SECRET,
      WEBHOOK_ALLOW_PRIVATE: false,
    });
    expect(await planDeliveries(db, run.id, operator)).toEqual([]);
    await end(db, run.id);
    const planned = await planDeliveries(db, run.id, operator);
    expect(planned).toHaveLength(2);
    expect(await planDeliveries(db, run.id, operator)).toEqual(expect.arrayContaining(planned));
    const rows = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.runId, run.id));
    expect(rows.map((r) => r.webhookId).sort()).toEqual([OPERATOR_WEBHOOK_ID, webhook.id].sort());

    // The operator's delivery is signed with DYNO_WEBHOOK_SECRET, and may go to a private address the operator
    // chose; the builder's, to the same receiver, is refused without WEBHOOK_ALLOW_PRIVATE.
    const operatorDelivery = rows.find((r) => r.webhookId === OPERATOR_WEBHOOK_ID)!;
    expect(await attemptDelivery(db, operatorDelivery.id, attempt(operator))).toMatchObject({ status: "delivered" });
    const builderDelivery = rows.find((r) => r.webhookId === webhook.id)!;
    expect(await attemptDelivery(db, builderDelivery.id, attempt(operator))).toMatchObject({ status: "failed" });
    expect(receiver.received(at("/plan"))).toEqual([]);
    const [request] = receiver.received(at("/operator"));
    expect(verifySignature(OPERATOR_SECRET, request!.body, request!.headers["dyno-signature"] as string).ok).toBe(true);
    // Delivered: planned no more, and a further attempt sends nothing.
    expect(await planDeliveries(db, run.id, operator)).not.toContain(operatorDelivery.id);
    expect(await attemptDelivery(db, operatorDelivery.id, attempt(operator))).toMatchObject({
      status: "delivered",
      attempts: 1,
    });
    expect(receiver.received(at("/operator"))).toHaveLength(1);
  });

  it("connects to the address it checked: a name only the check's resolver knows still reaches the receiver", async () => {
    const { db, run, webhook } = await endedRunWithWebhook("/pinned");
    const port = new URL(receiver.url("/")).port;
    await db
      .update(webhooks)
      .set({ url: `http://hooks.dyno-test.invalid:${port}${at("/pinned")}` })
      .where(eq(webhooks.id, webhook.id));
    await end(db, run.id);
    const [id] = await planDeliveries(db, run.id, settings());
    const resolve = () => Promise.resolve([{ address: "127.0.0.1", family: 4 }]);
    expect(await attemptDelivery(db, id!, attempt(settings(), { resolve }))).toMatchObject({ status: "delivered" });
    expect(receiver.received(at("/pinned"))[0]!.headers.host).toBe(`hooks.dyno-test.invalid:${port}`);
  });

  it("does not follow a redirect: the attempt fails and is retried later", async () => {
    receiver.answer(at("/moved"), [302]);
    const { db, run } = await endedRunWithWebhook("/moved");
    await end(db, run.id);
    const [id] = await planDeliveries(db, run.id, settings());
    expect(await attemptDelivery(db, id!, attempt(settings()))).toMatchObject({ status: "pending", attempts: 1 });
    const [row] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id!));
    expect(row).toMatchObject({ lastStatusCode: 302, status: "pending" });
    expect(row!.lastError).toMatch(/redirects are not followed/);
  });

  it("fails at once, without a POST, when the secret cannot be read (SESSION_SECRET changed)", async () => {
    const { db, run } = await endedRunWithWebhook("/rotated");
    await end(db, run.id);
    const [id] = await planDeliveries(db, run.id, settings());
    const result = await attemptDelivery(db, id!, { ...attempt(settings()), sessionSecret: () => "z".repeat(32) });
    expect(result).toMatchObject({ status: "failed", attempts: 1 });
    const [row] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id!));
    expect(row!.lastError).toMatch(/delete the webhook and add it again/);
    expect(receiver.received(at("/rotated"))).toEqual([]);
  });

  it("finds the ended runs whose run/ended never arrived: settled, within a day, with a webhook older than the end, no delivery", async () => {
    const { db, user, project, run: lost, webhook } = await endedRunWithWebhook("/sweep");
    const now = new Date();
    const ago = (ms: number) => new Date(now.getTime() - ms);
    const endAt = async (runId: string, finishedAt: Date) =>
      db.update(runs).set({ status: "failed", finishedAt }).where(eq(runs.id, runId));
    await db
      .update(webhooks)
      .set({ createdAt: ago(3 * 3_600_000) })
      .where(eq(webhooks.id, webhook.id));
    await endAt(lost.id, ago(10 * 60_000));
    const justEnded = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    await endAt(justEnded.id, ago(30_000));
    const beforeTheWebhook = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    await endAt(beforeTheWebhook.id, ago(4 * 3_600_000));
    const delivered = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    await endAt(delivered.id, ago(10 * 60_000));
    await planDeliveries(db, delivered.id, settings());
    const active = await createQueuedRun(db, { userId: user.id, projectId: project.id });

    const found = (await lostRunEnds(db, settings(), { now })).filter((r) => r.projectId === project.id);
    expect(found).toEqual([{ runId: lost.id, projectId: project.id, status: "failed" }]);
    expect(found.map((r) => r.runId)).not.toContain(active.id);
    // Once planned, it is lost no more.
    await planDeliveries(db, lost.id, settings());
    expect((await lostRunEnds(db, settings(), { now })).filter((r) => r.projectId === project.id)).toEqual([]);
  });
});
