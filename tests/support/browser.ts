/**
 * Browser tests: playwright-core driving Debian's chromium (no browser
 * download: `apt-get install -y chromium`). CHROMIUM_PATH points elsewhere.
 */
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

export const screenshotsFolder = path.resolve("test-results/screenshots");

export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
}

/** A headless chromium. Close it in afterAll. */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium is not at ${executablePath}. Install it (Debian/Ubuntu: apt-get install -y chromium) ` +
        "or set CHROMIUM_PATH to a Chromium or Chrome binary.",
    );
  }
  return chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * Opens `url` and waits until Remix has hydrated it. In development, Vite's
 * dependency optimizer reloads the page when it meets a dependency it had not
 * pre-bundled (typically on the first visit after the config or the routes
 * changed); such a reload is waited out instead of failing the test.
 */
export async function gotoHydrated(page: Page, url: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  const response = await page.goto(url, { waitUntil: "networkidle", timeout: timeoutMs });
  for (;;) {
    try {
      await page.waitForFunction(
        () =>
          (window as { __remixRouter?: { state: { initialized: boolean } } }).__remixRouter?.state.initialized === true,
        undefined,
        { timeout: Math.max(1, deadline - Date.now()) },
      );
      await page.waitForLoadState("networkidle", { timeout: Math.max(1, deadline - Date.now()) });
      return response;
    } catch (error) {
      if (Date.now() < deadline && /context was destroyed|navigation/i.test(String(error))) continue;
      throw error;
    }
  }
}

/** Vite's client failing to reach its HMR socket: the test server runs without HMR, so this is noise. */
const VITE_HMR_NOISE = /WebSocket closed without opened|\[vite\] failed to connect to websocket/i;

/** Collects the page's uncaught errors (Vite's HMR socket noise left out); check the array at the end of a test. */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (error) => {
    if (!VITE_HMR_NOISE.test(error.message)) errors.push(error.message);
  });
  return errors;
}

/** Saves a full-page PNG as test-results/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(screenshotsFolder, { recursive: true });
  const file = path.join(screenshotsFolder, `${name.replace(/[^\w.-]+/g, "-")}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
