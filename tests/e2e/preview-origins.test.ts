/**
 * Preview origins in chromium: each project's preview on `http://<label>.localhost:<port>` has storage and cookies
 * of its own (a cookie an app sets for the whole of localhost stays on its host), errors a page throws reach its
 * app's log, and a real Vite dev server behind the preview gets its HMR socket through it and reports its errors.
 * The preview server here is the real one; the app processes are objects whose state the test sets, over real
 * servers on unix sockets, as the app-process supervisor will provide.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import os from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPreviewServer, type PreviewServer } from "../../server/preview";
import { launchBrowser } from "../support/browser";
import { TestApp } from "../support/preview-request";

const SECRET = "preview-origins-e2e-secret-0123456789abcdef";

let browser: Browser;
let preview: PreviewServer;
let dir: string;
const servers: Array<{ close(): Promise<unknown> | void }> = [];
const folders = new Map<string, string>();
const apps = new Map<string, TestApp>();
const staticA = randomUUID();
const staticB = randomUUID();
const cookieApp = randomUUID();

function staticProject(id: string, files: Record<string, string>): void {
  const folder = path.join(dir, id);
  mkdirSync(folder, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(folder, name), content);
  folders.set(id, folder);
  const app = new TestApp();
  app.state = "stopped";
  app.command = null;
  apps.set(id, app);
}

async function listenOnSocket(server: Server, socketPath: string): Promise<void> {
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  servers.push({
    close: () =>
      new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      }),
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "dyno-preview-e2e-"));
  const page = "<!doctype html><html><head><title>Project</title></head><body>static</body></html>";
  staticProject(staticA, {
    "index.html": page,
    "errors.html":
      "<!doctype html><html><head><title>Errors</title></head><body>" +
      '<script>setTimeout(() => { throw new Error("thrown on purpose"); }); Promise.reject(new Error("rejected on purpose"));</script>' +
      '<script type="module" src="/missing-module.js"></script></body></html>',
  });
  staticProject(staticB, { "index.html": page });

  // An app that sets a cookie for the whole of localhost, as a careless dev server might.
  const cookies = new TestApp();
  cookies.socketPath = path.join(dir, "cookie-app.sock");
  apps.set(cookieApp, cookies);
  await listenOnSocket(
    createServer((_req, res) =>
      res
        .writeHead(200, {
          "Content-Type": "text/html",
          "Set-Cookie": "everywhere=1; Domain=localhost; Path=/",
        })
        .end("<!doctype html><title>Cookie app</title>"),
    ),
    cookies.socketPath,
  );

  preview = await startPreviewServer({
    port: 0,
    secret: SECRET,
    resolveDirectory: async (id) => folders.get(id) ?? null,
    app: async (id) => apps.get(id) ?? null,
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await preview?.close();
  for (const server of servers) await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("an origin per project", () => {
  it("keeps each project's localStorage and cookies to itself, and an app's Domain=localhost cookie to its host", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      const a = preview.originFor(staticA);
      const b = preview.originFor(staticB);
      expect(new URL(a).origin).not.toBe(new URL(b).origin);

      await page.goto(`${a}/`);
      expect(await page.title()).toBe("Project");
      await page.evaluate(() => {
        localStorage.setItem("who", "A");
        document.cookie = "who=A; path=/";
      });
      await page.goto(`${b}/`);
      expect(await page.evaluate(() => [localStorage.getItem("who"), document.cookie])).toEqual([null, ""]);
      await page.evaluate(() => {
        localStorage.setItem("who", "B");
        document.cookie = "who=B; path=/";
      });

      await page.goto(`${preview.originFor(cookieApp)}/`);
      expect(await page.title()).toBe("Cookie app");
      expect(await page.evaluate(() => document.cookie)).toBe("everywhere=1");

      await page.goto(`${a}/`);
      expect(await page.evaluate(() => [localStorage.getItem("who"), document.cookie])).toEqual(["A", "who=A"]);
      // The check can fail: the same origin reads what it stored.
      await page.goto(`${b}/`);
      expect(await page.evaluate(() => [localStorage.getItem("who"), document.cookie])).toEqual(["B", "who=B"]);
    } finally {
      await context.close();
    }
  });

  it("sends what the page throws to its app's log: an uncaught error, an unhandled rejection, a failed module load", async () => {
    const app = apps.get(staticA)!;
    app.logged = [];
    const page = await browser.newPage();
    try {
      await page.goto(`${preview.originFor(staticA)}/errors.html`);
      await expect
        .poll(() => app.logged.map((l) => `${l.stream}: ${l.text.split("\n")[0]}`).sort(), { timeout: 15_000 })
        .toEqual([
          "browser: Failed to load module " + `${preview.originFor(staticA)}/missing-module.js on /errors.html`,
          expect.stringMatching(
            /^browser: Uncaught error: Uncaught Error: thrown on purpose \(.*errors\.html:1:\d+\) on \/errors\.html$/,
          ),
          "browser: Unhandled promise rejection: rejected on purpose on /errors.html",
        ]);
      // The other project heard nothing.
      expect(apps.get(staticB)!.logged).toEqual([]);
    } finally {
      await page.close();
    }
  });
});

describe("a Vite dev server behind the preview", () => {
  const viteProject = randomUUID();
  let root: string;
  let closeVite: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    root = path.join(dir, "vite-app");
    mkdirSync(root, { recursive: true });
    writeFileSync(
      path.join(root, "index.html"),
      '<!doctype html><html><head><title>Vite app</title></head><body><p id="out"></p><script type="module" src="/main.js"></script></body></html>',
    );
    writeFileSync(
      path.join(root, "main.js"),
      'import { message } from "./dep.js";\ndocument.getElementById("out").textContent = message;\nimport.meta.hot?.accept("./dep.js", (dep) => { if (dep) document.getElementById("out").textContent = dep.message; });\n',
    );
    writeFileSync(path.join(root, "dep.js"), 'export const message = "first";\n');
    const app = new TestApp();
    app.socketPath = path.join(dir, "vite.sock");
    apps.set(viteProject, app);
    const http = createServer();
    const { createServer: createViteServer } = await import("vite");
    const vite = await createViteServer({
      root,
      configFile: false,
      logLevel: "silent",
      appType: "spa",
      server: { middlewareMode: true, hmr: { server: http }, watch: { usePolling: true, interval: 50 } },
    });
    // A file written before the watcher's first scan has ended is in its baseline: no change is ever seen (under load,
    // the scan can outlast the page load). Write only once it watches.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 15_000);
      vite.watcher.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    http.on("request", vite.middlewares);
    await listenOnSocket(http, app.socketPath);
    closeVite = () => vite.close();
  });

  afterAll(async () => {
    await closeVite?.();
  });

  it("serves the app at /, connects its HMR socket through the preview, updates live, and reports its errors", async () => {
    const app = apps.get(viteProject)!;
    app.logged = [];
    const page = await browser.newPage();
    const consoleText: string[] = [];
    page.on("console", (message) => consoleText.push(message.text()));
    try {
      await page.goto(`${preview.originFor(viteProject)}/`);
      await expect.poll(() => page.locator("#out").textContent(), { timeout: 30_000 }).toBe("first");
      await expect.poll(() => consoleText.some((t) => /\[vite\] connected/.test(t)), { timeout: 15_000 }).toBe(true);

      // Hot module reload over the proxied WebSocket: the page changes without a reload.
      await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
      writeFileSync(path.join(root, "dep.js"), 'export const message = "second";\n');
      await expect.poll(() => page.locator("#out").textContent(), { timeout: 30_000 }).toBe("second");
      expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);

      // An import that resolves to nothing: Vite's transform fails and it says so on its HMR socket (what its error
      // overlay shows); the reporter passes it on. A second rewrite right after an update can go unseen by Vite's
      // watcher (seen in CI: no update at all for it), so it comes a second later, as a person's next edit would.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      writeFileSync(path.join(root, "dep.js"), 'import "./nope.js";\nexport const message = "third";\n');
      await expect
        .poll(() => app.logged.find((l) => l.text.startsWith("Vite error:"))?.text ?? "", { timeout: 30_000 })
        .toMatch(/nope\.js.*dep\.js/s);
    } finally {
      await page.close();
    }
  });
});
