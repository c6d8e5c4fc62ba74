/**
 * The builder's security headers in chromium: a page on another origin (here
 * the same host on another port: the same site, as the preview is in
 * development) that frames the builder gets nothing rendered, and the
 * builder's own pages, in a whole run with the preview framed, and in
 * development with Vite's HMR on, break no rule of their Content-Security-Policy.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import getPort from "get-port";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { signUp } from "../support/accounts";
import { gotoHydrated, launchBrowser } from "../support/browser";
import { reserveTestDatabase } from "../support/database";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-framing";

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

/** A browser context signed in as a new builder. */
async function signedInContext(appUrl: string): Promise<BrowserContext> {
  const cookie = await signUp(appUrl, `framing-${Date.now()}-${Math.random()}@example.test`, "a long enough password");
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.addCookies([{ name: "__dyno_session", value: cookie.slice(cookie.indexOf("=") + 1), url: appUrl }]);
  return context;
}

/**
 * Every CSP violation the page's documents report (frames included), and the
 * console's CSP refusals: hooked before any script of the page runs. Other
 * refusals are not the CSP's: a built page whose script is not written yet
 * gets the preview's 404 (text/plain, nosniff), which Chromium also words
 * "Refused to execute script".
 */
async function recordViolations(page: Page): Promise<string[]> {
  const violations: string[] = [];
  await page.exposeFunction("__reportCspViolation", (text: string) => violations.push(text));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      (window as unknown as { __reportCspViolation(text: string): void }).__reportCspViolation(
        `${location.origin}: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`,
      );
    });
  });
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(`console: ${message.text()}`);
  });
  return violations;
}

function serveHtml(html: string): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) =>
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(html),
  );
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
    ),
  );
}

async function createProject(page: Page, title: string): Promise<string> {
  await gotoHydrated(page, `${stack.app.url}/projects`);
  await page.getByPlaceholder(/Title/).fill(title);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  return page.url().split("/").at(-1)!;
}

describe("framing the builder", () => {
  it("renders nothing of the builder inside another origin's frame, signed in or not", async () => {
    const context = await signedInContext(stack.app.url);
    const page = await context.newPage();
    const projectId = await createProject(page, "Framed");
    const consoleText: string[] = [];
    page.on("console", (message) => consoleText.push(message.text()));
    const attacker = await serveHtml(
      `<!doctype html><title>Win a prize</title><iframe id="victim" src="${stack.app.url}/projects/${projectId}" width="1200" height="800"></iframe>`,
    );
    try {
      await page.goto(attacker.url, { waitUntil: "load" });
      const frameElement = await page.waitForSelector("#victim");
      const frame = await frameElement.contentFrame();
      // Given time to render, had it been allowed to.
      await page.waitForTimeout(1_500);
      const rendered = frame ? await frame.evaluate(() => document.body?.innerText ?? "").catch(() => "") : "";
      expect(rendered).not.toContain("Framed");
      expect(
        frame
          ? await frame
              .locator("textarea, button, form")
              .count()
              .catch(() => 0)
          : 0,
      ).toBe(0);
      expect(consoleText.join("\n")).toMatch(/frame-ancestors 'none'|X-Frame-Options/);

      // The same page, opened directly, shows the builder: the checks above can fail.
      await gotoHydrated(page, `${stack.app.url}/projects/${projectId}`);
      expect(await page.getByRole("textbox", { name: "Prompt" }).count()).toBe(1);
    } finally {
      await context.close();
      await new Promise((resolve) => attacker.server.close(resolve));
    }
  });

  it("logs no CSP violation through a whole run: list, builder, live card, the preview framed, files and runs", async () => {
    const context = await signedInContext(stack.app.url);
    const page = await context.newPage();
    const violations = await recordViolations(page);
    try {
      useScript([
        turn.write(
          "index.html",
          '<!doctype html><h1 id="greeting">Hello from the sandbox</h1><script src="app.js"></script>',
        ),
        turn.write("app.js", 'document.body.dataset.ready = "yes";'),
        turn.reply("Done: **a greeting page**."),
      ]);
      await createProject(page, "Policed");
      await gotoHydrated(page, page.url());
      const box = page.getByRole("textbox", { name: "Prompt" });
      await box.fill("Build a greeting page");
      await box.press("Enter");
      await expect
        .poll(() => page.locator(".live-card").getAttribute("data-status"), { timeout: 60_000 })
        .toBe("complete");
      const preview = page.frameLocator("iframe.preview-frame");
      await expect
        .poll(
          () =>
            preview
              .locator("body")
              .getAttribute("data-ready", { timeout: 2_000 })
              .catch(() => null),
          { timeout: 20_000 },
        )
        .toBe("yes");
      await page.locator("nav.tabs").getByRole("link", { name: "Files" }).click();
      await page.getByRole("navigation", { name: "Project files" }).getByRole("link", { name: "index.html" }).click();
      await expect.poll(() => page.locator("pre code.hljs .hljs-tag").count()).toBeGreaterThan(0);
      await page.locator("nav.tabs").getByRole("link", { name: /Runs/ }).click();
      await expect.poll(() => page.locator("table.run-history tbody tr").first().textContent()).toContain("Complete");
      await gotoHydrated(page, `${stack.app.url}/projects`);
      expect(violations).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("lets only the builder frame a built page: another origin framing the preview gets nothing", async () => {
    const context = await signedInContext(stack.app.url);
    const page = await context.newPage();
    useScript([
      turn.write("index.html", '<!doctype html><h1 id="greeting">Hello from the sandbox</h1>'),
      turn.reply("Done."),
    ]);
    await createProject(page, "Preview framing");
    await gotoHydrated(page, page.url());
    await page.getByRole("textbox", { name: "Prompt" }).fill("Build a greeting page");
    await page.getByRole("textbox", { name: "Prompt" }).press("Enter");
    await expect
      .poll(() => page.locator(".live-card").getAttribute("data-status"), { timeout: 60_000 })
      .toBe("complete");
    // Inside the builder, the preview shows.
    const inBuilder = page.frameLocator("iframe.preview-frame");
    await expect
      .poll(
        () =>
          inBuilder
            .locator("#greeting")
            .textContent({ timeout: 2_000 })
            .catch(() => null),
        { timeout: 20_000 },
      )
      .toBe("Hello from the sandbox");
    const previewUrl = (await page.locator("iframe.preview-frame").getAttribute("src"))!;
    const attacker = await serveHtml(`<!doctype html><iframe id="victim" src="${previewUrl}"></iframe>`);
    const consoleText: string[] = [];
    page.on("console", (message) => consoleText.push(message.text()));
    try {
      await page.goto(attacker.url, { waitUntil: "load" });
      const frame = await (await page.waitForSelector("#victim")).contentFrame();
      await page.waitForTimeout(1_000);
      const rendered = frame ? await frame.evaluate(() => document.body?.innerText ?? "").catch(() => "") : "";
      expect(rendered).not.toContain("Hello from the sandbox");
      expect(consoleText.join("\n")).toMatch(/frame-ancestors/);
    } finally {
      await context.close();
      await new Promise((resolve) => attacker.server.close(resolve));
    }
  });
});

describe("development with HMR", () => {
  let child: ChildProcess | undefined;

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
  });

  it("hydrates the sign-in page with Vite's HMR socket connected and no CSP violation", async () => {
    const reserved = await reserveTestDatabase();
    const dataDir = reserved.env.DYNO_DATA_DIR ?? mkdtempSync(path.join(os.tmpdir(), "dyno-framing-"));
    try {
      // The app as `npm run dev` starts it: Vite in middleware mode, file watching and HMR on.
      child = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          "--input-type=module",
          "-e",
          'const { startAppServer } = await import("./server/app.ts"); const s = await startAppServer({ mode: "development", port: 0, watch: true }); console.log(`ready ${s.url}`);',
        ],
        {
          env: {
            ...process.env,
            ...reserved.env,
            DYNO_DATA_DIR: dataDir,
            PREVIEW_PORT: String(await getPort()),
            INNGEST_DEV: "1",
            NO_PROXY: "127.0.0.1,localhost",
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let log = "";
      child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`dev server not ready:\n${log}`)), 90_000);
        child!.stdout!.on("data", (chunk: Buffer) => {
          log += chunk.toString();
          const match = /ready (http\S+)/.exec(log);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
        child!.once("exit", (code) => reject(new Error(`dev server exited (${code}):\n${log}`)));
      });

      const page = await browser.newPage();
      const violations = await recordViolations(page);
      const consoleText: string[] = [];
      page.on("console", (message) => consoleText.push(message.text()));
      try {
        await gotoHydrated(page, `${url}/login`, 60_000);
        await expect
          .poll(() => consoleText.some((text) => /\[vite\] connected/.test(text)), { timeout: 15_000 })
          .toBe(true);
        expect(violations).toEqual([]);
        // The nonce is known only to the server render: React must not take the difference for a hydration mismatch.
        expect(consoleText.filter((text) => /did not match|hydrat/i.test(text))).toEqual([]);
      } finally {
        await page.close();
      }
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child!.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await reserved.release();
      if (!reserved.env.DYNO_DATA_DIR) rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
