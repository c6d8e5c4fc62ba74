/**
 * The model's answer streamed to the live card in chromium (decision 035):
 * while a slow write_file streams, the card shows the file's name and its
 * content growing under the current step; once the step's durable tool_call
 * arrives the partial is gone; a refresh mid-stream shows the partial again
 * from the server's latest frame. At 1280 and 390 px (screenshots in
 * test-results/screenshots/).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-streaming";
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

async function signUpAndCreateProject(page: Page, email: string): Promise<string> {
  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await page.getByPlaceholder(/Title/).fill("Streaming");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  await gotoHydrated(page, page.url());
  return page.url();
}

const CONTENT = Array.from(
  { length: 80 },
  (_, i) => `<li class="item">Item number ${i + 1}: streamed as the model writes it</li>`,
).join("\n");

function script(): Turn[] {
  // About 120 pieces, 60 ms apart: some 7 s of writing.
  return [
    { ...turn.write("index.html", CONTENT), chunkChars: 50, chunkDelayMs: 60 },
    turn.reply("The list is written."),
  ];
}

describe("streaming in the browser", () => {
  for (const width of [1280, 390]) {
    it(`shows the file being written on the live card, and again after a refresh, at ${width} px`, async () => {
      stack.replay.addScript({ name: SCRIPT, turns: script() } as ReplayScript);
      const context = await browser.newContext({ viewport: { width, height: 900 } });
      const page = await context.newPage();
      const errors = collectPageErrors(page);
      try {
        await signUpAndCreateProject(page, `streaming-${width}-${Date.now()}@example.test`);
        const box = page.getByRole("textbox", { name: "Prompt" });
        await box.fill("Write a long list");
        await box.press("Enter");
        const card = page.locator(".live-card");
        const partial = card.locator(".live-partial");
        await partial.waitFor({ timeout: 30_000 });
        await expect.poll(() => partial.locator(".live-partial-head").textContent()).toContain("index.html");
        const firstLength = ((await partial.locator(".live-partial-text").textContent()) ?? "").length;
        // It grows as the model writes.
        await expect
          .poll(async () => ((await partial.locator(".live-partial-text").textContent()) ?? "").length, {
            timeout: 10_000,
          })
          .toBeGreaterThan(firstLength + 200);
        const shown = (await partial.locator(".live-partial-text").textContent()) ?? "";
        expect(CONTENT.startsWith(shown.replace(/^…/, "").slice(0, 100))).toBe(true);
        await screenshot(page, `streaming-partial-${width}`);

        // A refresh mid-stream: the server's latest frame brings the partial straight back.
        await gotoHydrated(page, page.url());
        await page.locator(".live-card .live-partial .live-partial-text").waitFor({ timeout: 5_000 });

        await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
        expect(await page.locator(".live-partial").count()).toBe(0);
        await screenshot(page, `streaming-done-${width}`);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });
  }
});
