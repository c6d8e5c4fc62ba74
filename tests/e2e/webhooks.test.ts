/**
 * The Webhooks tab in chromium: a builder adds a URL, sees its secret once,
 * runs a prompt, and sees the delivery arrive (delivered) after a reload;
 * a refused URL says why beside the form, not under the prompt box.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver";

const SCRIPT = "e2e-webhooks";

let stack: Stack;
let browser: Browser;
let receiver: WebhookReceiver;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${SCRIPT}`, WEBHOOK_ALLOW_PRIVATE: "1" } });
  stack.replay.addScript({ name: SCRIPT, turns: [turn.reply("Done.")] } as ReplayScript);
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await receiver?.close();
});

describe("the Webhooks tab", () => {
  it("adds a webhook, shows its secret once, and lists the delivery of the next run", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    try {
      await gotoHydrated(page, `${stack.app.url}/signup`);
      await page.getByLabel("Email").fill(`webhooks-${Date.now()}@example.test`);
      await page.getByLabel("Password").fill("a long enough password");
      await page.getByRole("button", { name: "Create your account" }).click();
      await page.waitForURL(/\/projects$/);
      await page.getByPlaceholder(/Title/).fill("Hooked");
      await page.getByRole("button", { name: "Create project" }).click();
      await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
      await gotoHydrated(page, page.url());

      await page.getByRole("link", { name: "Webhooks" }).click();
      await page.waitForURL(/view=webhooks/);
      await page.getByLabel("Webhook URL").fill("ftp://example.com/hook");
      // The browser's own check of type=url passes ftp:; the server refuses it.
      await page.getByRole("button", { name: "Add webhook" }).click();
      await expect
        .poll(() => page.locator(".webhooks-panel .error").textContent())
        .toContain("A webhook URL starts with https://");

      await page.getByLabel("Webhook URL").fill(receiver.url("/browser"));
      await page.getByRole("button", { name: "Add webhook" }).click();
      const secret = page.getByTestId("webhook-secret");
      await secret.waitFor();
      expect(await secret.textContent()).toMatch(/^whsec_/);
      expect(await page.getByLabel("Webhook URL").inputValue()).toBe("");
      await screenshot(page, "webhooks-added");

      const box = page.getByRole("textbox", { name: "Prompt" });
      await box.fill("build it");
      await box.press("Enter");
      await receiver.waitFor("/browser", 1);
      await expect
        .poll(
          async () => {
            await page.reload();
            return page.locator('[data-delivery-status="delivered"]').count();
          },
          { timeout: 30_000, interval: 1_000 },
        )
        .toBe(1);
      expect(await page.getByTestId("webhook-secret").count()).toBe(0);
      await screenshot(page, "webhooks-delivered");

      // On a phone the view fits: nothing scrolls the page sideways (the deliveries table scrolls in its box).
      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await page.locator('[data-delivery-status="delivered"]').waitFor();
      const sideways = await page.evaluate(() => document.scrollingElement!.scrollWidth - window.innerWidth);
      expect(sideways).toBeLessThanOrEqual(0);
      await screenshot(page, "webhooks-phone");
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
