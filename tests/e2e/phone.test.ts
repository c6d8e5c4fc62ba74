/**
 * The app on a phone (390 px wide) and on a laptop (1280 px), in chromium:
 * sign-in, the project list and the builder never scroll sideways, Sign out
 * stays on screen, and the builder's preview, once opened, has real height.
 * Screenshots of each page at both widths go to test-results/screenshots/.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-phone";
const PASSWORD = "a long enough password";
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Hi</title></head>
<body style="margin:0;font-family:sans-serif"><h1 id="greeting" style="padding:1rem">Hello from a phone</h1></body></html>`;

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${SCRIPT}` } });
  browser = await launchBrowser();
  stack.replay.addScript({
    name: SCRIPT,
    turns: [
      turn.todos(["Write the page", "completed"]),
      turn.write("index.html", PAGE),
      turn.run("printf 'checking %s\\n' page; exit 3"),
      turn.reply(
        "Done: a greeting page with a very-long-unbroken-word-that-could-push-the-layout-sideways-if-nothing-wraps-it.",
      ),
    ],
  } as ReplayScript);
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

/**
 * How far the page scrolls sideways (0 when it does not). Against the
 * device's width, not innerWidth: a mobile browser widens its layout
 * viewport to fit content that overflows, which would hide the overflow.
 */
async function sideScroll(page: Page): Promise<number> {
  const { width } = page.viewportSize()!;
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.scrollingElement!.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  return Math.max(scrollWidth, innerWidth) - width;
}

/** Sign out is shown, whole, inside the viewport's width and at the top of the page. */
async function expectSignOutOnScreen(page: Page) {
  const button = page.getByRole("button", { name: "Sign out" });
  expect(await button.isVisible()).toBe(true);
  const box = (await button.boundingBox())!;
  const { width } = page.viewportSize()!;
  expect(box.x).toBeGreaterThanOrEqual(0);
  expect(box.x + box.width).toBeLessThanOrEqual(width);
  expect(box.y).toBeGreaterThanOrEqual(0);
  // Nothing sits on top of it (the header's parts do not overlap).
  const hit = await page.evaluate(
    ([x, y]) => document.elementFromPoint(x!, y!)?.closest("button")?.textContent ?? null,
    [box.x + box.width / 2, box.y + box.height / 2],
  );
  expect(hit).toBe("Sign out");
}

async function journey(context: BrowserContext, label: string) {
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  const { width } = page.viewportSize()!;

  // Each page's screenshot comes before its checks, so a failure has a picture.
  await gotoHydrated(page, `${stack.app.url}/login`);
  await screenshot(page, `${label}-login`);
  expect(await sideScroll(page), "login").toBeLessThanOrEqual(0);
  const submit = (await page.getByRole("button", { name: "Sign in" }).boundingBox())!;
  expect(submit.x + submit.width).toBeLessThanOrEqual(width);

  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(`${label}-with-a-rather-long-address-${Date.now()}@example.test`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await gotoHydrated(page, page.url());
  await page.getByPlaceholder(/Title/).fill("A project with a title long enough to crowd a phone's header");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  const projectUrl = page.url();

  await gotoHydrated(page, `${stack.app.url}/projects`);
  await screenshot(page, `${label}-projects`);
  expect(await sideScroll(page), "projects").toBeLessThanOrEqual(0);
  await expectSignOutOnScreen(page);

  await gotoHydrated(page, projectUrl);
  const box = page.getByRole("textbox", { name: "Prompt" });
  await box.fill("Build a greeting page");
  await box.press("Enter");
  await expect.poll(() => page.locator(".live-card").getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
  await gotoHydrated(page, projectUrl);
  await screenshot(page, `${label}-builder`);
  expect(await sideScroll(page), "builder").toBeLessThanOrEqual(0);
  await expectSignOutOnScreen(page);
  expect(await box.isVisible()).toBe(true);

  // The preview, opened, fills a real part of the screen and shows the page.
  await page.locator("nav.tabs").getByRole("link", { name: "Preview" }).click();
  const frame = page.locator("iframe.preview-frame");
  await frame.scrollIntoViewIfNeeded();
  await screenshot(page, `${label}-builder-preview`);
  const viewport = await page.evaluate(() => window.innerHeight);
  const frameBox = (await frame.boundingBox())!;
  expect(frameBox.height, "preview height").toBeGreaterThanOrEqual(viewport * 0.5);
  const pane = (await page.getByRole("region", { name: "Result" }).boundingBox())!;
  expect(frameBox.width).toBeGreaterThan(pane.width * 0.95);
  await expect
    .poll(
      () =>
        page
          .frameLocator("iframe.preview-frame")
          .locator("#greeting")
          .textContent({ timeout: 2_000 })
          .catch(() => null),
      {
        timeout: 15_000,
      },
    )
    .toBe("Hello from a phone");

  // The Runs tab and a run's detail fit too.
  await gotoHydrated(page, `${projectUrl}?view=runs`);
  expect(await sideScroll(page), "runs").toBeLessThanOrEqual(0);
  await page
    .locator("table.run-history")
    .getByRole("link", { name: /Build a greeting page/ })
    .click();
  await page.waitForURL(/run=/);
  await expect.poll(() => page.locator(".run-detail .step-output").count()).toBeGreaterThan(0);
  await screenshot(page, `${label}-run-detail`);
  expect(await sideScroll(page), "run detail").toBeLessThanOrEqual(0);

  expect(errors).toEqual([]);
  await page.close();
}

describe("the app at phone and laptop widths", () => {
  it("fits a 390 px phone: no sideways scrolling, Sign out on screen, a preview with real height", async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
    });
    try {
      await journey(phone, "phone-390");
    } finally {
      await phone.close();
    }
  });

  it("keeps the laptop layout at 1280 px", async () => {
    const laptop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      await journey(laptop, "laptop-1280");
      const page = await laptop.newPage();
      await gotoHydrated(page, `${stack.app.url}/projects`);
      await page.locator(".project-title").first().click();
      await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
      // Side by side: the result pane starts to the right of the chat, both at the top.
      const chat = (await page.getByRole("region", { name: "Chat" }).boundingBox())!;
      const result = (await page.getByRole("region", { name: "Result" }).boundingBox())!;
      expect(result.x).toBeGreaterThanOrEqual(chat.x + chat.width - 1);
      expect(Math.abs(result.y - chat.y)).toBeLessThan(2);
      await page.close();
    } finally {
      await laptop.close();
    }
  });
});
