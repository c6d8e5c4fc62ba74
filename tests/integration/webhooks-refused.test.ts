/**
 * Completion webhooks without WEBHOOK_ALLOW_PRIVATE (the default): a URL
 * that is or resolves to a loopback address is refused when it is added,
 * with a sentence that says why, however the address is spelled; and one
 * that got in anyway (the database edited, or the flag since removed) is
 * checked again at send and failed at once, without a POST.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webhookDeliveries, webhooks } from "../../db/schema";
import { signedInCookie } from "../support/accounts";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver";

let stack: Stack;
let receiver: WebhookReceiver;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  stack = await startStack();
  console.log(`[webhooks-refused] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

describe("webhook targets on private addresses", () => {
  it("refuses loopback URLs at registration, in every spelling, and saves nothing", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const cookie = await signedInCookie(user.id);
    const port = new URL(receiver.url("/")).port;
    for (const url of [
      receiver.url("/x"),
      `http://localhost:${port}/x`,
      `http://2130706433:${port}/x`,
      `http://0x7f.1:${port}/x`,
      `http://[::ffff:127.0.0.1]:${port}/x`,
      `http://[::1]:${port}/x`,
      "http://169.254.169.254/latest/meta-data/",
    ]) {
      const response = await fetch(`${stack.app.url}/projects/${project.id}?view=webhooks`, {
        method: "POST",
        body: new URLSearchParams({ intent: "webhook-add", url }),
        headers: { Cookie: cookie },
      });
      expect([url, response.status]).toEqual([url, 400]);
      const html = await response.text();
      expect(html, url).toMatch(/Webhooks may not target [^<]*: it is a (loopback|link-local)/);
      expect(html, url).toContain("WEBHOOK_ALLOW_PRIVATE=1");
    }
    expect(await db.select().from(webhooks).where(eq(webhooks.projectId, project.id))).toEqual([]);
    expect(receiver.received()).toEqual([]);
  });

  it("checks again at send: a stored loopback target fails at once, with no POST, and the run is not affected", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const { sealSecret } = await import("../../inngest/webhooks/secret-box");
    const { sessionSecret } = await import("../../app/auth/secret.server");
    await db
      .insert(webhooks)
      .values({ projectId: project.id, url: receiver.url("/sneaky"), secret: sealSecret("whsec_x", sessionSecret()) });
    const { startRun } = await import("../../app/models/runs.server");
    const run = await startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "build" },
      model: scripted(stack.replay, [turn.reply("Done.")]),
    });
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");

    const deadline = Date.now() + 30_000;
    let delivery;
    while (Date.now() < deadline) {
      [delivery] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.runId, run.id));
      if (delivery && delivery.status !== "pending") break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(delivery).toMatchObject({ status: "failed", attempts: 1, lastStatusCode: null });
    expect(delivery!.lastError).toMatch(/may not target 127\.0\.0\.1: it is a loopback/);
    expect(receiver.received()).toEqual([]);
  });
});
