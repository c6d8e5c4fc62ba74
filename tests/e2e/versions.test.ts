/**
 * Versions in chromium: a builder opens a step's diff from the live card,
 * sees it highlighted, previews an old version's files, restores it, undoes
 * the restore, and, after stopping a run, undoes that run. At 1280 and 390 px.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-versions";
const PASSWORD = "a long enough password";

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${SCRIPT}`, VERSIONS_EXPORT_ALLOW_LOCAL: "1" } });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

function useScript(turns: Turn[]) {
  stack.replay.addScript({ name: SCRIPT, turns } as ReplayScript);
}

async function signUpAndCreateProject(page: Page, name: string): Promise<string> {
  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(`versions-${name}-${Date.now()}@example.test`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await page.getByPlaceholder(/Title/).fill(`Versions ${name}`);
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

const workspaceOf = (projectUrl: string) => stack.workspace(projectUrl.split("/").pop()!);

describe("versions in the browser", () => {
  it("opens a step's diff, previews an old version, restores it and undoes the restore", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    try {
      const projectUrl = await signUpAndCreateProject(page, "restore");
      useScript([
        turn.write("app.js", "export function greet(name) {\n  return 'Hello ' + name;\n}\n"),
        turn.write(
          "app.js",
          "export function greet(name) {\n  return `Hello, ${name}!`;\n}\n\nexport const version = 2;\n",
        ),
        turn.reply("Greeter written and improved."),
      ]);
      await send(page, "Write a greeter, then improve it");
      const card = page.locator(".live-card");
      await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");

      // The second step's diff, from the live card.
      await card.locator(".steps > summary").click();
      const links = card.locator("a.step-version");
      await expect.poll(() => links.count()).toBe(2);
      expect(await links.nth(1).textContent()).toBe("+0 ~1 −0 · diff");
      await links.nth(1).click();
      await page.waitForURL(/view=history/);
      const detail = page.locator(".history-detail");
      await expect
        .poll(() => detail.locator(".diff-drawn").getAttribute("data-drawn"), { timeout: 15_000 })
        .toBe("highlighted");
      expect(await detail.locator(".diff-summary").textContent()).toContain("app.js");
      // Deleted and added lines, highlighted as JavaScript by diff2html.
      expect(await detail.locator(".d2h-del").count()).toBeGreaterThan(0);
      expect(await detail.locator(".d2h-ins .hljs-keyword, .d2h-ins .hljs-string").count()).toBeGreaterThan(0);
      await screenshot(page, "versions-diff-1280");
      await page.getByRole("button", { name: "Side by side" }).click();
      await expect.poll(() => detail.locator(".d2h-file-side-diff").count()).toBeGreaterThan(0);
      await screenshot(page, "versions-diff-side-by-side-1280");

      // Preview version 2 (after the first step), without touching the workspace.
      const v2 = page.locator('.version[data-version="2"]');
      await v2.getByRole("link", { name: "Files" }).click();
      await page.waitForURL(/show=files/);
      await detail.getByRole("link", { name: "app.js" }).click();
      await expect.poll(() => detail.locator(".code-view").textContent()).toContain("'Hello ' + name");
      const workspace = workspaceOf(projectUrl);
      expect(readFileSync(path.join(workspace, "app.js"), "utf8")).toContain("export const version = 2;");
      await screenshot(page, "versions-preview-1280");

      // Restore it: the files are version 2's, and the restore is version 5 with an undo.
      await v2.getByRole("button", { name: "Restore" }).click();
      await expect.poll(() => page.locator(".history-panel .notice").textContent()).toContain("Restored version 2");
      expect(readFileSync(path.join(workspace, "app.js"), "utf8")).toBe(
        "export function greet(name) {\n  return 'Hello ' + name;\n}\n",
      );
      const newest = page.locator(".version").first();
      await expect.poll(() => newest.getAttribute("data-version")).toBe("5");
      expect(await newest.locator(".version-kind").textContent()).toBe("Restored version 2");
      await screenshot(page, "versions-restored-1280");

      await newest.getByRole("button", { name: "Undo this restore" }).click();
      await expect.poll(() => page.locator(".history-panel .notice").textContent()).toContain("Restored version 4");
      expect(readFileSync(path.join(workspace, "app.js"), "utf8")).toContain("export const version = 2;");
      await expect.poll(() => page.locator(".version").first().getAttribute("data-version")).toBe("6");

      // On a phone the list and the diff stack, with no sideways scrolling of the page.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.locator('.version[data-version="3"]').getByRole("link", { name: "Diff" }).click();
      await expect
        .poll(() => detail.locator(".diff-drawn").getAttribute("data-drawn"), { timeout: 15_000 })
        .toBe("highlighted");
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await screenshot(page, "versions-diff-390");

      // Export to Git, from the form: a local bare repository gets the branch.
      const bare = path.join(stack.dataDir, `e2e-export-${Date.now()}.git`);
      execFileSync("git", ["init", "-q", "--bare", bare]);
      await page.getByText("Export to Git").click();
      await page.getByLabel("Remote URL").fill(bare);
      await page.getByLabel(/^Token/).fill("e2e-token");
      await screenshot(page, "versions-export-390");
      await page.getByRole("button", { name: "Push history" }).click();
      await expect
        .poll(() => page.locator(".history-panel .notice").textContent())
        .toContain("Pushing the history (up to version 6) to the branch dyno");
      // The push runs in the engine; the panel asks again until it has ended.
      await expect
        .poll(() => page.locator(".export-git .push-state").first().textContent(), { timeout: 30_000 })
        .toMatch(/Pushed version 6 to dyno/);
      await screenshot(page, "versions-export-pushed-390");
      // A remote that is no repository: accepted at once, and the panel then shows the recorded error.
      await page.getByLabel("Remote URL").fill(path.join(stack.dataDir, "e2e-nowhere.git"));
      await page.getByRole("button", { name: "Push history" }).click();
      await expect
        .poll(() => page.locator(".export-git .push-state.error").textContent(), { timeout: 30_000 })
        .toMatch(/Last push \(version 6\): There is no Git repository at that URL/);
      // The earlier push went to another remote: the panel no longer says this one has version 6.
      expect(await page.locator('.export-git [data-push-state="pushed"]').count()).toBe(0);
      expect(await page.getByRole("button", { name: "Push history" }).isEnabled()).toBe(true);
      await screenshot(page, "versions-export-failed-390");
      expect(execFileSync("git", ["--git-dir", bare, "log", "--format=%s", "dyno"], { encoding: "utf8" })).toContain(
        "Run ",
      );
      expect(await page.content()).not.toContain("e2e-token");

      // Without JavaScript: the server's diff is shown (with no layout buttons, which would do nothing) and a
      // restore is an ordinary form post.
      const plainContext = await browser.newContext({
        viewport: { width: 1280, height: 900 },
        javaScriptEnabled: false,
        storageState: await context.storageState(),
      });
      try {
        const plain = await plainContext.newPage();
        await plain.goto(`${projectUrl}?view=history`);
        await plain.locator('.version[data-version="3"]').getByRole("link", { name: "Diff" }).click();
        const plainDetail = plain.locator(".history-detail");
        expect(await plainDetail.locator(".d2h-del").count()).toBeGreaterThan(0);
        expect(await plainDetail.getByRole("button", { name: "Side by side" }).count()).toBe(0);
        await screenshot(plain, "versions-diff-nojs-1280");
        await plain.locator('.version[data-version="2"]').getByRole("button", { name: "Restore" }).click();
        expect(await plain.locator(".history-panel .notice").textContent()).toContain("Restored version 2");
        expect(readFileSync(path.join(workspace, "app.js"), "utf8")).toBe(
          "export function greet(name) {\n  return 'Hello ' + name;\n}\n",
        );
        expect(await plain.locator(".version").first().getAttribute("data-version")).toBe("7");
      } finally {
        await plainContext.close();
      }
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("offers Undo this run on a stopped run, which puts the files back as they were before it", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    try {
      const projectUrl = await signUpAndCreateProject(page, "stop");
      useScript([
        turn.write("keep.txt", "before\n"),
        turn.reply("Base written."),
        turn.write("half.txt", "half done\n"),
        turn.run("sleep 60"),
        turn.reply("never"),
      ]);
      await send(page, "Write the base");
      const card = page.locator(".live-card");
      await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
      await send(page, "Do more");
      await expect.poll(() => card.locator(".live-now").textContent(), { timeout: 60_000 }).toContain("sleep 60");
      await card.getByRole("button", { name: "Stop" }).click();
      await expect.poll(() => card.getAttribute("data-status"), { timeout: 20_000 }).toBe("stopped");
      const workspace = workspaceOf(projectUrl);
      expect(existsSync(path.join(workspace, "half.txt"))).toBe(true);

      const undo = page.getByRole("button", { name: "Undo this run" });
      await expect.poll(() => undo.count(), { timeout: 10_000 }).toBe(1);
      expect(await page.getByRole("button", { name: "Retry this prompt" }).count()).toBe(1);
      await screenshot(page, "versions-stopped-card-1280");
      // Without JavaScript the server renders the same offer, at phone width too.
      const plain = await browser.newContext({
        javaScriptEnabled: false,
        storageState: await context.storageState(),
        viewport: { width: 390, height: 844 },
      });
      try {
        const plainPage = await plain.newPage();
        await plainPage.goto(projectUrl);
        expect(await plainPage.getByRole("button", { name: "Undo this run" }).count()).toBe(1);
        await screenshot(plainPage, "versions-stopped-card-nojs-390");
      } finally {
        await plain.close();
      }
      await undo.click();
      await expect.poll(() => page.locator(".chat-pane .notice").textContent()).toContain("Undid the run");
      expect(existsSync(path.join(workspace, "half.txt"))).toBe(false);
      expect(readFileSync(path.join(workspace, "keep.txt"), "utf8")).toBe("before\n");
      // Undone: the card offers Redo in its place, which puts back what the run left.
      const redo = page.getByRole("button", { name: "Redo this run" });
      await expect.poll(() => redo.count(), { timeout: 10_000 }).toBe(1);
      expect(await undo.count()).toBe(0);
      await page.setViewportSize({ width: 390, height: 844 });
      await screenshot(page, "versions-stopped-card-390");
      await redo.click();
      await expect.poll(() => page.locator(".chat-pane .notice").textContent()).toContain("Redid the run");
      expect(readFileSync(path.join(workspace, "half.txt"), "utf8")).toBe("half done\n");
      await expect.poll(() => undo.count(), { timeout: 10_000 }).toBe(1);
      await screenshot(page, "versions-stopped-card-redone-390");
    } finally {
      await context.close();
    }
  });

  it("lists pruned versions greyed under the size against its bound, and says why one cannot be opened", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    try {
      const projectUrl = await signUpAndCreateProject(page, "pruned");
      const projectId = projectUrl.split("/").pop()!;
      useScript([
        ...Array.from({ length: 6 }, (_, i) => turn.write(`page${i + 1}.html`, `<h1>Page ${i + 1}</h1>\n`)),
        turn.reply("Six pages."),
      ]);
      await send(page, "Write six pages");
      const card = page.locator(".live-card");
      await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
      // As the bound would, after the run: versions 1-3 pruned (the unit and integration tests drive the bound).
      const { projectHistory } = await import("../../versions/config");
      const history = projectHistory(projectId)!;
      const commit = execFileSync("git", ["--git-dir", history.gitDir, "rev-parse", "versions~4"], {
        encoding: "utf8",
      });
      await history.pruneBefore(commit.trim());

      await gotoHydrated(page, `${projectUrl}?view=history`);
      expect(await page.getByTestId("history-size").textContent()).toMatch(
        /8 versions · [\d.]+ KB of 1\.0 GB on disk · versions before 4 pruned/,
      );
      const pruned = page.locator(".version[data-pruned]");
      expect(await pruned.evaluateAll((rows) => rows.map((r) => r.getAttribute("data-version")))).toEqual([
        "3",
        "2",
        "1",
      ]);
      expect(await pruned.getByRole("link").count()).toBe(0);
      expect(await pruned.getByRole("button").count()).toBe(0);
      // Version 4 is kept, but its diff would be against version 3, whose files are gone: it offers its files only.
      const oldest = page.locator('.version[data-version="4"]');
      expect(await oldest.getByRole("link").evaluateAll((links) => links.map((a) => a.textContent))).toEqual([
        "Files",
        ".zip",
      ]);
      expect(await page.locator('.version[data-version="8"]').getByRole("link", { name: "Run diff" }).count()).toBe(0);
      // The live card still links the first step's diff: the panel says that version was pruned.
      await card.locator(".steps > summary").click();
      await card.locator("a.step-version").first().click();
      await expect
        .poll(() => page.locator(".history-panel .error").textContent())
        .toContain("Version 2 was pruned to keep the project's history under its size bound");
      await screenshot(page, "versions-pruned-1280");
      await page.setViewportSize({ width: 390, height: 844 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await screenshot(page, "versions-pruned-390");
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
