/**
 * The Vite + React demo end to end, in chromium against the whole stack (the app in development mode, the real
 * Inngest engine, the local sandbox with its egress proxy, the real npm registry): the builder clicks the demo
 * button, the replayed session installs the packages and starts the dev server, and the preview (its own
 * `*.localhost` origin) shows the habit tracker. Later runs, scripted through the stack's AGENT_MODEL, edit the
 * component: the change arrives by hot module reload through the preview's WebSocket (no full reload), a broken
 * component's compile error reaches the model's next request, the app's log and the overlay in the preview, and the
 * fix brings the app back. The Files view and the zip hold the project's files only, not node_modules.
 *
 * One `npm install` for the whole file (~10-20 s here): every journey continues in the same project.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { unzipSync } from "fflate";
import type { Browser, BrowserContext, Frame, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import type { AppProcess } from "../../sandbox/types";
import { gotoHydrated, launchBrowser, screenshot, screenshotsFolder } from "../support/browser";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-vite-edits";
const PASSWORD = "a long enough password";
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const demo = JSON.parse(
  readFileSync(new URL("../../model-replay/scripts/vite-react.json", import.meta.url), "utf8"),
) as ReplayScript;
/** The demo's component as the replayed session writes it. */
const DEMO_APP = demo.turns
  .map((t) => t.reply as { tool: string; path?: string; content?: string } | undefined)
  .find((reply) => reply?.tool === "write_file" && reply.path === "src/App.tsx")!.content!;
if (!DEMO_APP.includes("<h1>Habit tracker</h1>")) throw new Error("the demo's App.tsx no longer has its heading");
const withHeading = (heading: string) => DEMO_APP.replace("<h1>Habit tracker</h1>", `<h1>${heading}</h1>`);

let stack: Stack;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let projectId: string;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${SCRIPT}` } });
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: LAPTOP });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[builder page] ${error.message}`));
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

/** The next prompt's script: it starts over at `prompt`, whatever the project's earlier runs said. */
function useScript(prompt: string, turns: Turn[]) {
  stack.replay.addScript({ name: SCRIPT, prompt, turns } as ReplayScript);
}

const liveCard = () => page.locator(".live-card");
const replies = () => page.locator(".message-assistant");

/** Runs `start` (a prompt sent, a button clicked) and waits for that run's reply and its live card's "complete". */
async function runToCompletion(start: () => Promise<void>, timeout: number) {
  // The card still says "complete" for the previous run until the new one shows: the new reply is what tells them apart.
  const before = await replies().count();
  await start();
  await expect.poll(() => replies().count(), { timeout, interval: 250 }).toBe(before + 1);
  await expect.poll(() => liveCard().getAttribute("data-status")).toBe("complete");
  await expect.poll(() => page.getByRole("textbox", { name: "Prompt" }).isDisabled()).toBe(false);
}

async function sendPrompt(text: string, timeout = 60_000) {
  await runToCompletion(async () => {
    const box = page.getByRole("textbox", { name: "Prompt" });
    await box.click();
    await box.fill(text);
    await box.press("Enter");
  }, timeout);
}

/** The preview iframe's document. */
async function previewFrame(): Promise<Frame> {
  const handle = await page.locator("iframe.preview-frame").elementHandle({ timeout: 30_000 });
  const frame = await handle!.contentFrame();
  if (!frame) throw new Error("the preview iframe has no document");
  return frame;
}

const preview = () => page.frameLocator("iframe.preview-frame");

async function previewHeading(): Promise<string | null> {
  return preview()
    .locator("h1")
    .first()
    .textContent({ timeout: 2_000 })
    .catch(() => null);
}

/** The project's app process, as the app server's registry holds it (the same process as this test). */
function appProcess(): AppProcess {
  const supervisors = (globalThis as Record<symbol, Map<string, AppProcess> | undefined>)[
    Symbol.for("dyno.appSupervisors")
  ];
  const found = [...(supervisors?.entries() ?? [])].find(([key]) => key.endsWith(`\0${projectId}`));
  if (!found) throw new Error(`no app process for project ${projectId}`);
  return found[1];
}

/** The newest request the model got that carries `text` (the replay server keeps the last 20). */
function lastPromptWith(text: string): string {
  const found = stack.replay.recentPrompts.findLast((prompt) => prompt.includes(text));
  if (found === undefined) {
    const tails = stack.replay.recentPrompts.map((prompt) => prompt.slice(-300).replace(/\s+/g, " "));
    throw new Error(`no request to the model carries "${text}"; the last ones end:\n${tails.join("\n---\n")}`);
  }
  return found;
}

async function appLogText(): Promise<string> {
  const logs = await appProcess().logs({ maxLines: 500 });
  return logs.lines.map((line) => line.text).join("\n");
}

describe("the Vite + React demo in the builder", () => {
  it(
    "installs, starts and renders the habit tracker in the preview on its own origin; a day can be ticked",
    { timeout: 300_000 },
    async () => {
      await gotoHydrated(page, `${stack.app.url}/signup`);
      await page.getByLabel("Email").fill(`vite-${Date.now()}@example.test`);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Create your account" }).click();
      await page.waitForURL(/\/projects$/);
      await page.getByPlaceholder(/Title/).fill("Habits");
      await page.getByRole("button", { name: "Create project" }).click();
      await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
      await gotoHydrated(page, page.url());
      projectId = page.url().split("/").at(-1)!;

      // npm install from the registry and a dev server start: a minute is plenty here, CI may be slower.
      await runToCompletion(() => page.getByRole("button", { name: /Vite \+ React demo/ }).click(), 240_000);
      expect((await appProcess().status()).state).toBe("running");

      const src = await page.locator("iframe.preview-frame").getAttribute("src");
      expect(new URL(src!).hostname).toMatch(/^[a-z0-9-]+\.localhost$/);
      expect(new URL(src!).origin).not.toBe(new URL(stack.app.url).origin);
      await expect.poll(previewHeading, { timeout: 60_000 }).toBe("Habit tracker");

      // Tick today's box for the first habit: React state, saved in the preview origin's localStorage.
      const today = preview().locator("tbody tr").first().locator("button.day").last();
      await today.click();
      await expect.poll(() => today.getAttribute("aria-pressed")).toBe("true");
      await expect.poll(() => preview().locator("td.streak").first().textContent()).toBe("1 day");

      await screenshot(page, "vite-demo-laptop");
      // The README's picture (docs/images/vite-demo.png is copied from it): the laptop screen, not the whole page.
      await page.screenshot({ path: path.join(screenshotsFolder, "vite-demo-laptop-viewport.png") });
    },
  );

  it("shows an edit to the component by hot reload, without reloading the page", { timeout: 120_000 }, async () => {
    const frame = await previewFrame();
    await frame.evaluate(() => ((window as unknown as { __marker?: number }).__marker = 1));

    useScript("Call the page My habits", [
      turn.write("src/App.tsx", withHeading("My habits")),
      turn.reply("The heading now reads **My habits**."),
    ]);
    await sendPrompt("Call the page My habits");

    await expect.poll(previewHeading, { timeout: 30_000 }).toBe("My habits");
    // The builder reloads a static preview 400 ms after a run's last change; give such a reload time to happen.
    await page.waitForTimeout(2_000);
    // The same document: a full reload (or a new frame) would have dropped the marker. React Fast Refresh kept the
    // ticked day too.
    expect(frame.isDetached(), "the builder replaced the preview frame").toBe(false);
    expect(await frame.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(1);
    expect(await preview().locator("tbody tr").first().locator("button.day").last().getAttribute("aria-pressed")).toBe(
      "true",
    );
    await screenshot(page, "vite-demo-after-edit");
  });

  it(
    "brings a compile error to the model's next request, the app's log and the preview; the fix renders again",
    { timeout: 180_000 },
    async () => {
      const broken = withHeading("Broken</h2");
      useScript("Break the heading", [turn.write("src/App.tsx", broken), turn.reply("I wrote a broken heading.")]);
      await sendPrompt("Break the heading");

      // The write_file result says it did not compile, with Vite's message, and the model reads it next.
      const afterWrite = lastPromptWith("Break the heading");
      expect(afterWrite).toMatch(
        /Updated src\/App\.tsx \(\d+ bytes\)\.\nThe running dev server failed to compile it \(HTTP 500 for \/src\/App\.tsx\):\n[\s\S]*src\/App\.tsx:\d+:\d+/,
      );
      // The app's log has Vite's error, naming the file.
      await expect.poll(appLogText, { timeout: 15_000 }).toMatch(/Internal server error[\s\S]*src\/App\.tsx/);
      // And the builder's Logs view shows it (another tab: this one keeps the preview open).
      const logs = await context.newPage();
      try {
        await gotoHydrated(logs, `${stack.app.url}/projects/${projectId}?view=logs`);
        await expect
          .poll(() => logs.getByLabel("App log").textContent(), { timeout: 15_000 })
          .toMatch(/Internal server error[\s\S]*src\/App\.tsx/);
        await screenshot(logs, "vite-demo-logs-compile-error");
      } finally {
        await logs.close();
      }
      // Vite's overlay in the preview says so too.
      await expect.poll(() => preview().locator("vite-error-overlay").count(), { timeout: 30_000 }).toBe(1);
      await screenshot(page, "vite-demo-compile-error");

      useScript("Fix the heading", [
        turn.write("src/App.tsx", withHeading("Habits, fixed")),
        turn.reply("Fixed: the heading is **Habits, fixed**."),
      ]);
      await sendPrompt("Fix the heading");
      const afterFix = lastPromptWith("Fix the heading");
      // This run's part of the conversation (the broken write's result is earlier in it).
      const fixTurn = afterFix.slice(afterFix.lastIndexOf("Fix the heading"));
      expect(fixTurn).toMatch(/Updated src\/App\.tsx \(\d+ bytes\)\.\n/);
      expect(fixTurn).not.toMatch(/failed to compile/);
      await expect.poll(previewHeading, { timeout: 30_000 }).toBe("Habits, fixed");
      await expect.poll(() => preview().locator("vite-error-overlay").count(), { timeout: 30_000 }).toBe(0);
    },
  );

  it("lists and zips the project's files only: no node_modules", async () => {
    const expected = [
      "index.html",
      "package-lock.json",
      "package.json",
      "src/App.css",
      "src/App.tsx",
      "src/main.tsx",
      "vite.config.ts",
    ];
    const response = await page.request.get(`${stack.app.url}/projects/${projectId}/download`);
    expect(response.status()).toBe(200);
    // The zip holds one folder named after the project; what is in it is the project.
    const entries = Object.keys(unzipSync(new Uint8Array(await response.body()))).filter((name) => !name.endsWith("/"));
    expect(new Set(entries.map((name) => name.split("/")[0]))).toEqual(new Set(["habits"]));
    const names = entries.map((name) => name.slice("habits/".length)).sort();
    expect(names).toEqual(expected);

    await gotoHydrated(page, `${stack.app.url}/projects/${projectId}?view=files`);
    const tree = page.getByRole("navigation", { name: "Project files" });
    await expect.poll(() => tree.getByRole("link").count()).toBeGreaterThan(0);
    const shown = (await tree.getByRole("link").allTextContents()).map((t) => t.trim());
    expect(shown.some((name) => /node_modules/.test(name))).toBe(false);
    expect(shown).toEqual(expect.arrayContaining(["package.json", "package-lock.json", "vite.config.ts"]));
    await screenshot(page, "vite-demo-files");
  });

  it("looks right on a phone: the builder and the app itself", { timeout: 120_000 }, async () => {
    const phone = await context.newPage();
    try {
      await phone.setViewportSize(PHONE);
      await gotoHydrated(phone, `${stack.app.url}/projects/${projectId}`);
      await expect
        .poll(
          () =>
            phone
              .frameLocator("iframe.preview-frame")
              .locator("h1")
              .textContent({ timeout: 2_000 })
              .catch(() => null),
          { timeout: 30_000 },
        )
        .toBe("Habits, fixed");
      await screenshot(phone, "vite-demo-phone-builder");
      const src = await phone.locator("iframe.preview-frame").getAttribute("src");
      await phone.goto(src!);
      await expect.poll(() => phone.locator("h1").textContent(), { timeout: 30_000 }).toBe("Habits, fixed");
      // Nothing scrolls sideways: not the page, not the card with the week's table.
      const overflow = await phone.evaluate(() =>
        [document.documentElement, document.querySelector(".card")!].map((el) => el.scrollWidth - el.clientWidth),
      );
      expect(overflow).toEqual([0, 0]);
      await screenshot(phone, "vite-demo-phone-app");
    } finally {
      await phone.close();
    }
  });
});
