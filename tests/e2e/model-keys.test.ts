/**
 * Model keys in chromium (decision 034): a builder on a server with no model
 * of its own adds an OpenAI-compatible key on /settings (the replay server
 * stands in for the provider), checks its connection, picks its model for a
 * project under the prompt box, runs a prompt with it, and removes the key;
 * at laptop and phone widths, with nothing scrolling sideways.
 */
import { randomUUID } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = `e2e-keys-${randomUUID().slice(0, 8)}`;

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: "", MODEL_KEYS_ALLOW_PRIVATE: "1" } });
  stack.replay.addScript({
    name: SCRIPT,
    turns: [turn.write("index.html", "<h1>made with my key</h1>"), turn.reply("Built with your key.")],
  } as ReplayScript);
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function noSideways(page: Page) {
  const sideways = await page.evaluate(() => document.scrollingElement!.scrollWidth - window.innerWidth);
  expect(sideways).toBeLessThanOrEqual(0);
}

describe("model keys in the browser", () => {
  it("adds a key, checks it, picks its model for a project, runs a prompt with it and removes it", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    const apiKey = `sk-e2e-${randomUUID().replaceAll("-", "")}`;
    try {
      await gotoHydrated(page, `${stack.app.url}/signup`);
      await page.getByLabel("Email").fill(`keys-${Date.now()}@example.test`);
      await page.getByLabel("Password").fill("a long enough password");
      await page.getByRole("button", { name: "Create your account" }).click();
      await page.waitForURL(/\/projects$/);
      await page.getByPlaceholder(/Title/).fill("Keyed");
      await page.getByRole("button", { name: "Create project" }).click();
      await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
      const projectUrl = page.url();
      await gotoHydrated(page, projectUrl);
      await expect.poll(() => page.locator("body").innerText()).toContain("No model is configured");

      await page.getByRole("banner").getByRole("link", { name: "Settings" }).click();
      await page.waitForURL(/\/settings$/);
      await gotoHydrated(page, page.url());
      await page.getByLabel("Provider").selectOption("openai-compatible");
      await page.getByLabel("Name (optional)").fill("My replay key");
      await page.getByLabel("API key").fill(apiKey);
      await page.getByLabel("Models (comma-separated)").fill(SCRIPT);
      await page.getByLabel("Base URL (OpenAI-compatible only)").fill(stack.replay.url);
      await page.getByRole("button", { name: "Add key" }).click();
      await page.getByText("Added “My replay key”.").waitFor();
      expect(await page.getByTestId("key-hint").textContent()).toBe(`…${apiKey.slice(-4)}`);
      // The key field was emptied, and the key is nowhere on the page.
      expect(await page.getByLabel("API key").inputValue()).toBe("");
      expect(await page.content()).not.toContain(apiKey);

      await page.getByRole("button", { name: "Check connection" }).click();
      await expect.poll(() => page.getByTestId("key-check").textContent()).toBe("✓ Connected.");
      await screenshot(page, "model-keys-settings");

      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await page.getByTestId("key-hint").waitFor();
      await noSideways(page);
      await screenshot(page, "model-keys-settings-phone");
      await page.setViewportSize({ width: 1280, height: 900 });

      await gotoHydrated(page, projectUrl);
      await page.getByTestId("model-summary").click();
      await page.locator("#model-choice").selectOption({ label: `openai-compatible/${SCRIPT}` });
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByText("Model saved: the next prompt uses it.").waitFor();
      await expect
        .poll(() => page.getByTestId("model-summary").textContent())
        .toBe(`Model: openai-compatible/${SCRIPT} with “My replay key”`);
      await expect.poll(() => page.locator("body").innerText()).not.toContain("No model is configured");
      await screenshot(page, "model-keys-picker");

      const sentBefore = stack.replay.authorizations.length;
      const box = page.getByRole("textbox", { name: "Prompt" });
      await box.fill("build it with my key");
      await box.press("Enter");
      await page.getByText("Built with your key.").waitFor({ timeout: 60_000 });
      expect(stack.replay.authorizations.slice(sentBefore)).toContain(`Bearer ${apiKey}`);
      await screenshot(page, "model-keys-run");

      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await page.getByTestId("model-summary").click();
      await page.locator("#model-choice").waitFor();
      await noSideways(page);
      await screenshot(page, "model-keys-picker-phone");
      await page.setViewportSize({ width: 1280, height: 900 });

      await gotoHydrated(page, `${stack.app.url}/settings`);
      await page.getByRole("button", { name: "Remove" }).click();
      await page.getByText("Key removed.").waitFor();
      await expect.poll(() => page.getByTestId("key-hint").count()).toBe(0);
      await gotoHydrated(page, projectUrl);
      await expect.poll(() => page.locator("body").innerText()).toContain("was removed: pick another model");
      // The picker still shows the saved choice, as no longer available, rather than another model.
      expect(await page.locator("#model-choice option:checked").textContent()).toBe(
        "A model of a removed key (no longer available)",
      );
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 180_000);
});
