/**
 * What a builder sees of a run's steps in chromium: a finished command's
 * output and the reason it failed, in the live card as the stream delivers
 * it and on a plain page without JavaScript; and a past run, opened from the
 * conversation or the Runs tab, with its plan, steps, outputs and files
 * after a later run took over the live card.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-run-views";
const PASSWORD = "a long enough password";
// What it prints is not in its own text: only the command's output can show it.
const FAILING = "printf 'compiled %s\\n' 12-modules; printf 'missing %s\\n' left-pad >&2; exit 3";

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

function useScript(turns: Turn[]) {
  stack.replay.addScript({ name: SCRIPT, turns } as ReplayScript);
}

async function signUpAndCreateProject(page: Page): Promise<string> {
  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(`run-views-${Date.now()}@example.test`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await page.getByPlaceholder(/Title/).fill("Run views");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  await gotoHydrated(page, page.url());
  return page.url();
}

async function send(page: Page, prompt: string) {
  const box = page.getByRole("textbox", { name: "Prompt" });
  await box.fill(prompt);
  await box.press("Enter");
}

const failedStep = (scope: ReturnType<Page["locator"]>) => scope.locator(".steps li.step-failed");

describe("a run's steps and outputs in the browser", () => {
  it("shows a failed command's output and reason live, then opens the past run after the next prompt", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    try {
      const projectUrl = await signUpAndCreateProject(page);
      useScript([
        turn.todos(["Build it", "completed"]),
        turn.write("index.html", "<!doctype html><h1>Built</h1>"),
        turn.run(FAILING),
        turn.reply("The build failed: see the step's output."),
        // The second prompt's run.
        turn.reply("Nothing else to do."),
      ]);
      await send(page, "Build it and run the build");
      const card = page.locator(".live-card");
      await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
      expect(await card.locator(".live-progress label").textContent()).toBe("Done in 4 iterations");

      // Folded from the stream, no reload: the failed step opens on its output once the step list is opened.
      await card.locator(".steps > summary").click();
      const step = failedStep(card);
      await expect.poll(() => step.count()).toBe(1);
      expect(await step.textContent()).toContain("Exit code 3");
      const output = step.locator(".step-output pre");
      expect(await output.isVisible()).toBe(true);
      const text = (await output.textContent()) ?? "";
      expect(text).toMatch(/\(exited with code 3 after [\d.]+ s\)/);
      expect(text).toContain("stdout:\ncompiled 12-modules\n");
      expect(text).toContain("stderr:\nmissing left-pad\n");
      await screenshot(page, "run-views-failed-step-output");

      // The next prompt replaces the live card; the first run is one click away from its prompt.
      const firstRunId = await card.getAttribute("data-run-id");
      await expect.poll(() => page.getByRole("textbox", { name: "Prompt" }).isDisabled()).toBe(false);
      await send(page, "Anything else?");
      const secondRun = async () =>
        (await card.getAttribute("data-run-id")) !== firstRunId ? card.getAttribute("data-status") : null;
      await expect.poll(secondRun, { timeout: 60_000 }).toBe("complete");
      expect(await card.textContent()).not.toContain("missing left-pad");

      const firstPrompt = page.locator(".message-user", { hasText: "Build it and run the build" });
      await firstPrompt.getByRole("link", { name: "Steps and files" }).click();
      await page.waitForURL(/[?&]run=[0-9a-f-]{36}/);
      const detail = page.getByRole("article", { name: "Run detail" });
      await expect.poll(() => detail.count()).toBe(1);
      expect(await detail.locator(".run-detail-prompt").textContent()).toContain("Build it and run the build");
      expect(await detail.locator(".todos li").allTextContents()).toEqual([expect.stringContaining("Build it")]);
      expect(await detail.locator(".changed-files li").allTextContents()).toEqual(["index.html"]);
      expect(await detail.locator(".steps li").count()).toBe(3);
      expect(await failedStep(detail).locator(".step-output pre").textContent()).toContain("missing left-pad");
      expect(await detail.getByRole("button", { name: /Stop/ }).count()).toBe(0);
      await screenshot(page, "run-views-run-detail");

      // Back to the list, and in again from the Runs tab.
      await detail.getByRole("link", { name: /All runs/ }).click();
      const rows = page.locator("table.run-history tbody tr");
      await expect.poll(() => rows.count()).toBe(2);
      await rows
        .nth(1)
        .getByRole("link", { name: /Build it and run the build/ })
        .click();
      await expect
        .poll(() => page.getByRole("article", { name: "Run detail" }).locator(".run-detail-prompt").textContent())
        .toContain("Build it and run the build");
      expect(page.url().startsWith(projectUrl)).toBe(true);
      expect(errors).toEqual([]);

      // Without JavaScript: the same page, and the output opens with a plain <details>.
      const plainContext = await browser.newContext({
        javaScriptEnabled: false,
        storageState: await context.storageState(),
      });
      try {
        const plain = await plainContext.newPage();
        await plain.goto(page.url());
        const plainDetail = plain.getByRole("article", { name: "Run detail" });
        const plainStep = failedStep(plainDetail);
        expect(await plainStep.locator(".step-output pre").isVisible()).toBe(true);
        await plainStep.locator(".step-output > summary").click();
        expect(await plainStep.locator(".step-output pre").isVisible()).toBe(false);
        await plainStep.locator(".step-output > summary").click();
        expect(await plainStep.locator(".step-output pre").isVisible()).toBe(true);
      } finally {
        await plainContext.close();
      }
    } finally {
      await context.close();
    }
  });
});
