/**
 * Steering in chromium (decision 033): while the agent works the prompt box
 * queues what is sent; the message shows as queued with Withdraw, a withdrawn
 * one goes away, and the one kept shows as read at the agent's next step. At
 * 1280 and 390 px (screenshots in test-results/screenshots/).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-steering";
const PASSWORD = "a long enough password";

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${SCRIPT}` } });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function signUpAndCreateProject(page: Page, email: string): Promise<void> {
  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await page.getByPlaceholder(/Title/).fill("Steered");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  await gotoHydrated(page, page.url());
}

describe("steering in the browser", () => {
  for (const width of [1280, 390]) {
    it(`queues, withdraws and shows a delivered message at ${width} px`, async () => {
      stack.replay.addScript({
        name: SCRIPT,
        turns: [turn.run("sleep 5"), turn.run("sleep 5"), turn.reply("Done, with a blue header.")],
      } as ReplayScript);
      const context = await browser.newContext({ viewport: { width, height: 900 } });
      const page = await context.newPage();
      const errors = collectPageErrors(page);
      try {
        await signUpAndCreateProject(page, `steering-${width}-${Date.now()}@example.test`);
        const box = page.getByRole("textbox", { name: "Prompt" });
        await box.fill("Build a page");
        await box.press("Enter");
        const card = page.locator(".live-card");
        await expect.poll(() => card.getAttribute("data-status"), { timeout: 30_000 }).toBe("running");
        // Step 1's command runs (its think is over): what is queued now is read at step 2, 5 s from now.
        await expect.poll(async () => (await card.textContent()) ?? "", { timeout: 30_000 }).toMatch(/sleep 5/);

        // The box stays open and says what sending does now.
        await expect.poll(() => page.getByRole("button", { name: "Queue" }).isEnabled()).toBe(true);
        await box.fill("Make the header blue");
        // Esc while writing to the agent does not stop it.
        await box.press("Escape");
        await box.press("Enter");
        const queued = page.locator('.message-steer[data-steer="queued"]');
        await expect.poll(() => queued.count(), { timeout: 10_000 }).toBe(1);
        expect(await card.getAttribute("data-status")).toBe("running");
        await box.fill("Actually, red");
        await box.press("Enter");
        await expect.poll(() => queued.count(), { timeout: 10_000 }).toBe(2);
        await screenshot(page, `steering-queued-${width}`);

        await queued.filter({ hasText: "Actually, red" }).getByRole("button", { name: "Withdraw" }).click();
        await expect.poll(() => queued.count(), { timeout: 10_000 }).toBe(1);

        const delivered = page.locator('.message-steer[data-steer="delivered"]');
        await expect.poll(() => delivered.textContent(), { timeout: 30_000 }).toContain("Read by the agent at step 2");
        expect(await delivered.textContent()).toContain("Make the header blue");
        await screenshot(page, `steering-delivered-${width}`);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow).toBeLessThanOrEqual(0);

        await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
        expect(await page.locator(".message-steer").count()).toBe(1);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });
  }
});
