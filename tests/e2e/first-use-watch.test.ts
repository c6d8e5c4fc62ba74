/**
 * `npm run dev` with Vite's watcher and HMR on, as a builder has it: an
 * .html file the agent writes into a workspace (the data folder here sits
 * inside the checkout under a name of its own, as DYNO_DATA_DIR may) must
 * not reload the builder's open pages, where a half-typed prompt would be
 * lost. A file written elsewhere in the checkout still reloads the page,
 * which shows the watcher was listening all along.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import getPort from "get-port";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppServer } from "../../server/app";
import { signUp } from "../support/accounts";
import { gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { reserveTestDatabase, type ReservedDatabase } from "../support/database";

const scratch = path.resolve(".cache", `first-use-watch-${randomUUID().slice(0, 8)}`);
const dataDir = path.join(scratch, "dyno-data");
const watchedFolder = path.join(scratch, "watched");

let app: AppServer;
let reserved: ReservedDatabase;
let browser: Browser;

beforeAll(async () => {
  reserved = await reserveTestDatabase();
  mkdirSync(watchedFolder, { recursive: true });
  Object.assign(process.env, reserved.env, {
    DYNO_DATA_DIR: dataDir,
    // A model is configured, so the prompt box is open; nothing is sent to it.
    AGENT_MODEL: "openai-compatible/unused",
    AGENT_BASE_URL: "http://127.0.0.1:9/v1",
    INNGEST_DEV: "1",
    INNGEST_BASE_URL: `http://127.0.0.1:${await getPort()}`,
  });
  const { startAppServer } = await import("../../server/app");
  app = await startAppServer({ mode: "development", port: 0, watch: true });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await reserved?.release();
  rmSync(scratch, { recursive: true, force: true });
});

/** True if the page navigated (a full reload) within `ms`. */
async function reloadsWithin(page: Page, ms: number): Promise<boolean> {
  return page
    .waitForEvent("framenavigated", { predicate: (frame) => frame === page.mainFrame(), timeout: ms })
    .then(() => true)
    .catch(() => false);
}

describe("the dev server's watcher", () => {
  it(
    "does not reload builder pages when the agent writes an .html file into a workspace",
    { timeout: 120_000 },
    async () => {
      const cookie = await signUp(app.url, `watch-${randomUUID()}@example.test`, "correct horse battery");
      const created = await fetch(`${app.url}/projects`, {
        method: "POST",
        body: new URLSearchParams({ intent: "create", title: "Watched" }),
        redirect: "manual",
        headers: { Cookie: cookie },
      });
      const projectId = created.headers.get("Location")!.split("/").at(-1)!;
      const workspace = path.join(dataDir, "workspaces", projectId);
      mkdirSync(workspace, { recursive: true });
      writeFileSync(path.join(workspace, "index.html"), "<h1>first</h1>\n");

      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const [name, value] = cookie.split("=") as [string, string];
      await context.addCookies([{ name, value, url: app.url }]);
      const page = await context.newPage();
      const hmrConnected = new Promise<void>((resolve) =>
        page.on("console", (message) => {
          if (message.text().includes("[vite] connected")) resolve();
        }),
      );
      // The first visit may make Vite's optimizer reload the page once; the second is settled.
      await gotoHydrated(page, `${app.url}/projects/${projectId}`);
      await gotoHydrated(page, `${app.url}/projects/${projectId}`);
      await hmrConnected;

      await page.evaluate(() => ((window as { firstUseMarker?: string }).firstUseMarker = "still here"));
      const box = page.getByRole("textbox", { name: "Prompt" });
      await box.fill("A half-typed prompt about a");

      // What the agent does: change the page, add another.
      writeFileSync(path.join(workspace, "index.html"), "<h1>second</h1>\n");
      writeFileSync(path.join(workspace, "about.html"), "<h1>about</h1>\n");
      expect(await reloadsWithin(page, 3_000)).toBe(false);
      expect(await page.evaluate(() => (window as { firstUseMarker?: string }).firstUseMarker)).toBe("still here");
      expect(await box.inputValue()).toBe("A half-typed prompt about a");
      await screenshot(page, "first-use-watch-kept-prompt");

      // The watcher is live: an .html file elsewhere in the checkout reloads the page, as Vite does.
      const reloaded = reloadsWithin(page, 15_000);
      writeFileSync(path.join(watchedFolder, "page.html"), "<h1>watched</h1>\n");
      expect(await reloaded).toBe(true);
      await context.close();
    },
  );
});
