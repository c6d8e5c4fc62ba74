/**
 * The app process in chromium: the Logs view (state badge with its reason,
 * Start/Restart and Stop, the live log with stderr and browser lines marked,
 * auto-scroll that lets the builder read back), the state beside the preview,
 * and "Fix this", which sends the error to the agent as a prompt (the replay
 * model answers). The workspace is a tiny node http server as its `dev`
 * script, run by the local app supervisor.
 */
import http from "node:http";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import type { Sandbox } from "../../sandbox";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-app-logs";
const PASSWORD = "a long enough password";

let stack: Stack;
let browser: Browser;

const SERVER_JS = `
const http = require("node:http");
const fs = require("node:fs");
if (fs.existsSync("crash.txt")) {
  console.error("Error: " + fs.readFileSync("crash.txt", "utf8").trim());
  console.error("    at Object.<anonymous> (/workspace/server.js:5:9)");
  process.exit(1);
}
const port = Number(process.env.PORT) || 3000;
console.log("booting the test server");
http
  .createServer((request, response) => {
    console.log("GET " + request.url);
    const error = fs.existsSync("page-error.txt") ? fs.readFileSync("page-error.txt", "utf8").trim() : null;
    response.setHeader("Content-Type", "text/html; charset=utf-8");
    response.end(
      "<!doctype html><title>Tiny</title><h1>hello from the app</h1>" +
        (error ? "<script>throw new Error(" + JSON.stringify(error) + ")</script>" : ""),
    );
  })
  .listen(port, "127.0.0.1", () => console.log("listening on " + port));
`;

/** A GET to the app over its unix socket, as the preview server reaches it. */
function getOverSocket(socketPath: string, requestPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.get({ socketPath, path: requestPath, headers: { Host: "localhost" } }, (response) => {
      response.resume();
      response.on("end", resolve);
    });
    request.on("error", reject);
  });
}

async function projectSandbox(projectId: string): Promise<Sandbox> {
  const { createAgentContext } = await import("../../inngest/agent/context");
  return createAgentContext().sandbox(projectId);
}

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${SCRIPT}` } });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function signUpAndCreateProject(page: Page): Promise<string> {
  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(`app-logs-${Date.now()}-${Math.random()}@example.test`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await page.getByPlaceholder(/Title/).fill("Tiny server");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  return /\/projects\/([0-9a-f-]{36})$/.exec(page.url())![1]!;
}

async function builtWorkspace(projectId: string): Promise<Sandbox> {
  const sandbox = await projectSandbox(projectId);
  await sandbox.writeFile(
    "package.json",
    JSON.stringify({ name: "tiny", private: true, scripts: { dev: "node server.js" } }),
  );
  await sandbox.writeFile("server.js", SERVER_JS);
  await sandbox.writeFile("index.html", "<!doctype html><h1>static fallback</h1>");
  return sandbox;
}

const badge = (page: Page) => page.locator(".logs-panel .app-badge");
const logLines = (page: Page) => page.locator(".app-log .log-line");

/** No sideways scroll: the page is no wider than the viewport. */
async function scrollsSideways(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth + 1);
}

describe("the app in the builder", () => {
  it("shows the state of a project with nothing to run, and its Logs view fits a phone", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    try {
      const projectId = await signUpAndCreateProject(page);
      await gotoHydrated(page, `${stack.app.url}/projects/${projectId}?view=logs`);
      expect(await badge(page).getAttribute("data-state")).toBe("stopped");
      expect(await page.locator(".logs-detail").textContent()).toMatch(/Nothing to run yet/);
      expect(await page.getByRole("button", { name: "Start" }).isDisabled()).toBe(true);
      expect(await page.getByRole("button", { name: "Stop" }).isDisabled()).toBe(true);
      expect(await scrollsSideways(page)).toBe(false);
      await screenshot(page, "app-logs-nothing-built-phone");
      // Beside the preview: the state, and the way to the log.
      await page.getByRole("link", { name: "Preview" }).click();
      await expect.poll(() => page.locator(".preview-bar .app-indicator").count()).toBe(1);
      expect(await page.locator(".preview-bar .app-badge").textContent()).toBe("App stopped");
      await screenshot(page, "app-logs-preview-indicator-phone");
      await page.locator(".preview-bar").getByRole("link", { name: "Logs" }).click();
      await page.waitForURL(/view=logs/);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("streams the running app's log live, restarts it, and sends a crash and a browser error with Fix this", async () => {
    const browserContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await browserContext.newPage();
    const errors = collectPageErrors(page);
    let sandbox: Sandbox | undefined;
    try {
      const projectId = await signUpAndCreateProject(page);
      sandbox = await builtWorkspace(projectId);
      await gotoHydrated(page, `${stack.app.url}/projects/${projectId}?view=logs`);
      expect(await badge(page).getAttribute("data-state")).toBe("stopped");

      // Start: the badge goes to running and the server's lines arrive over the stream.
      await page.getByRole("button", { name: "Start" }).click();
      await expect.poll(() => badge(page).getAttribute("data-state"), { timeout: 60_000 }).toBe("running");
      await expect
        .poll(() => logLines(page).allTextContents(), { timeout: 30_000 })
        .toEqual(expect.arrayContaining([expect.stringContaining("listening on")]));
      const firstStart = (await logLines(page).count()) + 0;

      // Restart: a second start's lines follow the first's, nothing repeated.
      await page.getByRole("button", { name: "Restart" }).click();
      await expect
        .poll(
          async () => (await logLines(page).allTextContents()).filter((t) => t === "booting the test server").length,
          {
            timeout: 60_000,
          },
        )
        .toBeGreaterThanOrEqual(2);
      await expect.poll(() => badge(page).getAttribute("data-state"), { timeout: 60_000 }).toBe("running");
      const seqs = await logLines(page).evaluateAll((items) => items.map((li) => Number(li.getAttribute("data-seq"))));
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(seqs.length).toBeGreaterThan(firstStart);

      // Requests reach the app through its socket, as the preview's proxy does; the server logs them.
      const endpoint = await sandbox.app.endpoint();
      for (const requestPath of ["/", "/assets/app.js"]) {
        if (endpoint?.kind === "socket") await getOverSocket(endpoint.path, requestPath);
      }

      // The page throws in the browser: the preview (through the app's origin) reports it to the app's log, and the
      // preview's bar offers it to the agent.
      await sandbox.writeFile("page-error.txt", "Cannot read properties of undefined (reading 'map')");
      await page.getByRole("link", { name: "Preview" }).click();
      await expect.poll(() => page.locator(".preview-bar .app-badge").textContent()).toBe("App running");
      const previewFix = page.locator(".preview-bar").getByRole("button", { name: "Fix this" });
      await expect.poll(() => previewFix.count(), { timeout: 30_000 }).toBe(1);
      expect(await page.frameLocator(".preview-frame").locator("h1").textContent()).toBe("hello from the app");
      await screenshot(page, "app-logs-preview-browser-error-laptop");
      await page.locator(".preview-bar").getByRole("link", { name: "Logs" }).click();
      await page.waitForURL(/view=logs/);
      const browserLine = page.locator(".app-log .log-browser", { hasText: "reading 'map'" });
      await expect.poll(() => browserLine.count(), { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await browserLine.first().locator(".log-stream").textContent()).toBe("browser");
      // One error per page load: the frame may have loaded twice (the reload when the app reached running can land
      // after the Preview tab mounted it), so the count is not the point here.
      await expect
        .poll(() => page.locator(".fix-callout").textContent())
        .toMatch(/The page threw (an error|\d+ errors) in the browser/);
      await screenshot(page, "app-logs-browser-error-laptop");
      await sandbox.exec("rm page-error.txt");

      // Auto-scroll follows the end, and stops when the builder scrolls up to read.
      for (let i = 0; i < 60; i++) await sandbox.app.appendLog("system", `filler line ${i}`);
      const log = page.locator(".app-log");
      await expect.poll(() => logLines(page).filter({ hasText: "filler line 59" }).count()).toBe(1);
      const atBottom = () =>
        log.evaluate(
          (el) => el.scrollHeight - el.scrollTop - el.clientHeight < 40 && el.scrollHeight > el.clientHeight,
        );
      await expect.poll(atBottom).toBe(true);
      await log.evaluate((el) => el.scrollTo({ top: 0 }));
      await sandbox.app.appendLog("system", "one more line");
      await expect.poll(() => logLines(page).filter({ hasText: "one more line" }).count()).toBe(1);
      expect(await log.evaluate((el) => el.scrollTop)).toBe(0);
      await page.getByRole("button", { name: "↓ Latest" }).click();
      await expect.poll(atBottom).toBe(true);

      // The state beside the preview.
      await page.getByRole("link", { name: "Preview" }).click();
      await expect.poll(() => page.locator(".preview-bar .app-badge").textContent()).toBe("App running");
      await page.locator(".preview-bar").getByRole("link", { name: "Logs" }).click();
      await page.waitForURL(/view=logs/);

      // A crash: stderr marked, the reason under the badge, and Fix this sends it.
      await sandbox.writeFile("crash.txt", "Cannot find module './routes'");
      stack.replay.addScript({
        name: SCRIPT,
        turns: [
          turn.reply("The server requires ./routes, which does not exist; I removed the require.", { delayMs: 1500 }),
        ],
      } as ReplayScript);
      await page.getByRole("button", { name: "Restart" }).click();
      await expect.poll(() => badge(page).getAttribute("data-state"), { timeout: 60_000 }).toBe("crashed");
      const stderr = page.locator(".app-log .log-stderr", { hasText: "Cannot find module './routes'" });
      await expect.poll(() => stderr.count(), { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await page.locator(".logs-detail").textContent()).toBeTruthy();
      const fix = page.locator(".fix-callout").getByRole("button", { name: "Fix this" });
      await expect.poll(() => page.locator(".fix-callout").textContent()).toContain("The app crashed");
      await screenshot(page, "app-logs-crashed-laptop");
      await fix.click();

      // The prompt lands in the conversation; while the run is active, Fix this is disabled and says why.
      const sent = page.locator(".message-user", { hasText: "Cannot find module './routes'" });
      await expect.poll(() => sent.count(), { timeout: 30_000 }).toBe(1);
      expect(await sent.textContent()).toMatch(/crashed/);
      await expect.poll(() => fix.isDisabled(), { timeout: 10_000 }).toBe(true);
      expect(await page.locator(".fix-callout").textContent()).toContain("The agent is working");
      const card = page.locator(".live-card");
      await expect.poll(() => card.getAttribute("data-status"), { timeout: 60_000 }).toBe("complete");
      await expect
        .poll(() => page.locator(".message-assistant").allTextContents(), { timeout: 30_000 })
        .toEqual(expect.arrayContaining([expect.stringContaining("I removed the require")]));
      expect(await fix.isDisabled()).toBe(false);

      // Fixed: Restart brings it back.
      await sandbox.exec("rm crash.txt");
      await page.getByRole("button", { name: "Restart" }).click();
      await expect.poll(() => badge(page).getAttribute("data-state"), { timeout: 60_000 }).toBe("running");
      await expect.poll(() => page.locator(".fix-callout").count()).toBe(0);
      await screenshot(page, "app-logs-running-laptop");
      // A conversation longer than its box does not make the page longer than the builder (the chat scrolls on its
      // own): on a short screen the prompt, the card and the reply overflow it.
      await page.setViewportSize({ width: 1280, height: 480 });
      expect(await page.locator(".chat-scroll").evaluate((el) => el.scrollHeight > el.clientHeight)).toBe(true);
      const pastBuilder = await page.evaluate(
        () =>
          document.documentElement.scrollHeight -
          (document.querySelector(".builder")!.getBoundingClientRect().bottom + window.scrollY),
      );
      expect(pastBuilder).toBeLessThanOrEqual(1);
      await page.setViewportSize({ width: 1280, height: 800 });

      // The same view at phone width: no sideways scroll, the controls reachable.
      await page.setViewportSize({ width: 390, height: 844 });
      expect(await scrollsSideways(page)).toBe(false);
      expect(await page.getByRole("button", { name: "Restart" }).isVisible()).toBe(true);
      await screenshot(page, "app-logs-running-phone");

      // Stop.
      await page.getByRole("button", { name: "Stop" }).click();
      await expect.poll(() => badge(page).getAttribute("data-state"), { timeout: 30_000 }).toBe("stopped");
      // The built page's own error (thrown on purpose in the frame) is the only one.
      expect(errors.filter((message) => !message.includes("reading 'map'"))).toEqual([]);
    } finally {
      await sandbox?.app.stop().catch(() => {});
      await browserContext.close();
    }
  });

  it("works without JavaScript: the log as the page rendered it, and Start as a plain form", async () => {
    const signUpContext = await browser.newContext();
    const signUpPage = await signUpContext.newPage();
    const projectId = await signUpAndCreateProject(signUpPage);
    const browserContext = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      javaScriptEnabled: false,
      storageState: await signUpContext.storageState(),
    });
    await signUpContext.close();
    const page = await browserContext.newPage();
    let sandbox: Sandbox | undefined;
    try {
      sandbox = await builtWorkspace(projectId);
      await page.goto(`${stack.app.url}/projects/${projectId}?view=logs`);
      await page.getByRole("button", { name: "Start" }).click();
      await page.waitForLoadState("load");
      expect(page.url()).toContain("view=logs");
      await expect
        .poll(
          async () => {
            await page.goto(`${stack.app.url}/projects/${projectId}?view=logs`);
            return logLines(page).allTextContents();
          },
          { timeout: 30_000 },
        )
        .toEqual(expect.arrayContaining([expect.stringContaining("listening on")]));
      expect(await badge(page).getAttribute("data-state")).toBe("running");
    } finally {
      await sandbox?.app.stop().catch(() => {});
      await browserContext.close();
    }
  });
});
