/**
 * Images in prompts in chromium (decision 036), with the bundled scripted project (AGENT_MODEL=replay/image-mockup,
 * as a builder runs it from a fresh clone): a screenshot attached in the prompt box is listed with its size, sent,
 * and shown as a thumbnail in the transcript; an SVG is refused with the text kept; both with JavaScript off too.
 * At 1280 and 390 px (screenshots in test-results/screenshots/).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { pngImage, SVG_IMAGE } from "../support/images";
import { startStack, type Stack } from "../support/stack";

const PASSWORD = "a long enough password";

let stack: Stack;
let browser: Browser;
let files: { png: string; svg: string };

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: "replay/image-mockup" } });
  browser = await launchBrowser();
  const dir = mkdtempSync(path.join(os.tmpdir(), "dyno-images-"));
  files = { png: path.join(dir, "mockup.png"), svg: path.join(dir, "logo.svg") };
  writeFileSync(files.png, pngImage(320, 200, [40, 110, 220]));
  writeFileSync(files.svg, SVG_IMAGE);
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function signUpAndCreateProject(page: Page, email: string, hydrated: boolean): Promise<void> {
  const go = (url: string) => (hydrated ? gotoHydrated(page, url) : page.goto(url));
  await go(`${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await page.getByPlaceholder(/Title/).fill("From a mockup");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  await go(page.url());
}

/** The thumbnail is there and its image loaded (from the owner-only route). */
async function expectThumbnail(page: Page) {
  const thumbnail = page.getByRole("img", { name: "Attached image mockup.png" });
  await expect.poll(() => thumbnail.count(), { timeout: 30_000 }).toBe(1);
  await expect
    .poll(() => thumbnail.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth), { timeout: 10_000 })
    .toBe(320);
  expect(await page.locator(".message-images").textContent()).toContain("mockup.png");
}

describe("images in the prompt box", () => {
  for (const width of [1280, 390]) {
    it(`attaches a screenshot, sends it and shows it in the transcript at ${width} px`, async () => {
      const context = await browser.newContext({ viewport: { width, height: 900 } });
      const page = await context.newPage();
      const errors = collectPageErrors(page);
      try {
        await signUpAndCreateProject(page, `images-${width}-${Date.now()}@example.test`, true);
        const box = page.getByRole("textbox", { name: "Prompt" });
        // A refused file: the message says why and the text stays in the box.
        await box.fill("Make a page like my logo");
        await page.locator("#prompt-images").setInputFiles(files.svg);
        await page.getByRole("button", { name: "Send" }).click();
        await expect
          .poll(() => page.getByRole("alert").textContent(), { timeout: 10_000 })
          .toContain("“logo.svg” is not a PNG, JPEG, WebP or GIF image");
        expect(await box.inputValue()).toBe("Make a page like my logo");

        await box.fill("Build this page from my mockup");
        await page.locator("#prompt-images").setInputFiles(files.png);
        expect(await page.getByRole("list", { name: "Images to send" }).textContent()).toMatch(
          /mockup\.png \(\d+ (bytes|KiB)\)/,
        );
        await screenshot(page, `prompt-images-chosen-${width}`);
        await box.press("Enter");
        await expectThumbnail(page);
        const card = page.locator(".live-card");
        await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
        // The box cleared, the file input too.
        expect(await box.inputValue()).toBe("");
        expect(await page.locator("#prompt-images").evaluate((input: HTMLInputElement) => input.files?.length)).toBe(0);
        await screenshot(page, `prompt-images-transcript-${width}`);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow).toBeLessThanOrEqual(0);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });
  }

  it("works without JavaScript: a plain multipart form, the refused text given back", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await signUpAndCreateProject(page, `images-nojs-${Date.now()}@example.test`, false);
      const box = page.getByRole("textbox", { name: "Prompt" });
      await box.fill("Like this logo, please");
      await page.locator("#prompt-images").setInputFiles(files.svg);
      await page.getByRole("button", { name: "Send" }).click();
      await page.waitForLoadState("load");
      expect(await page.getByRole("alert").textContent()).toContain("“logo.svg” is not a PNG, JPEG, WebP or GIF image");
      expect(await box.inputValue()).toBe("Like this logo, please");

      await box.fill("Build this page from my mockup");
      await page.locator("#prompt-images").setInputFiles(files.png);
      await page.getByRole("button", { name: "Send" }).click();
      await page.waitForLoadState("load");
      await page.goto(page.url());
      await expectThumbnail(page);
      await screenshot(page, "prompt-images-nojs-1280");
    } finally {
      await context.close();
    }
  });
});
