/**
 * The browser-test setup works: chromium (through playwright-core) loads the
 * app served by startStack() and hydrates a page (screenshots saved under
 * test-results/screenshots/), the test helpers' cookies sign the browser in,
 * and the browser's own EventSource reads the live event stream and resumes
 * it after a dropped connection. The builder's journeys are in the other
 * e2e tests.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendRunEvent } from "../../db/run-events";
import { signedInCookie, signUp } from "../support/accounts";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { createBuilder, createQueuedRun } from "../support/fixtures";
import { startStack, type Stack } from "../support/stack";
import { startTcpProxy } from "../support/tcp-proxy";

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  stack = await startStack();
  browser = await launchBrowser();
  console.log(`[browser-smoke] chromium ${browser.version()}, app ${stack.app.url}`);
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe("browser smoke", () => {
  it("opens the sign-in page in chromium", async () => {
    const page = await browser.newPage();
    const errors = collectPageErrors(page);
    try {
      // The client bundle loads from Vite and hydrates the page.
      const response = await gotoHydrated(page, `${stack.app.url}/login`);
      expect(response?.status()).toBe(200);
      expect(await page.title()).toMatch(/Sign in/);
      await page.getByLabel(/email/i).waitFor();
      expect(await page.getByLabel(/password/i).count()).toBeGreaterThan(0);
      await screenshot(page, "smoke-login");
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it("is signed in with the cookie signUp() returns", async () => {
    const cookie = await signUp(stack.app.url, `smoke-${Date.now()}@example.test`, "a long enough password");
    const [name, value] = [cookie.slice(0, cookie.indexOf("=")), cookie.slice(cookie.indexOf("=") + 1)];
    const context = await browser.newContext();
    try {
      await context.addCookies([{ name, value, url: stack.app.url }]);
      const page = await context.newPage();
      await gotoHydrated(page, `${stack.app.url}/projects`);
      expect(new URL(page.url()).pathname).toBe("/projects");
      await screenshot(page, "smoke-projects");
    } finally {
      await context.close();
    }
  });

  it("streams run events to the browser's EventSource, which resumes from its last id after a dropped connection", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const append = async (type: string) =>
      (await appendRunEvent(db, { runId: run.id, projectId: project.id, type }))!.id;
    const cookie = await signedInCookie(user.id);
    // The browser goes through a proxy, so the test can cut its connection.
    const proxy = await startTcpProxy(stack.app.url);
    const context = await browser.newContext();
    try {
      await context.addCookies([
        { name: "__dyno_session", value: cookie.slice(cookie.indexOf("=") + 1), url: proxy.url },
      ]);
      const page = await context.newPage();
      await page.goto(`${proxy.url}/healthz`);
      const first = await append("one");
      await page.evaluate((url) => {
        const w = window as unknown as { received: string[]; states: number[]; source: EventSource };
        w.received = [];
        w.states = [];
        w.source = new EventSource(url);
        w.source.addEventListener("run-event", (e) =>
          w.received.push(`${(e as MessageEvent).lastEventId}:${JSON.parse((e as MessageEvent).data).type}`),
        );
        w.source.addEventListener("error", () => w.states.push(w.source.readyState));
      }, `/projects/${project.id}/events?after=0`);
      const received = () => page.evaluate(() => (window as unknown as { received: string[] }).received);
      await expect.poll(received).toEqual([`${first}:one`]);

      proxy.dropAll();
      // CONNECTING: the browser retries by itself.
      await expect.poll(() => page.evaluate(() => (window as unknown as { states: number[] }).states)).toEqual([0]);
      // Written while the browser is cut off: it arrives after the reconnect (sent with Last-Event-ID), and "one" does not repeat.
      const second = await append("two");
      await expect.poll(received, { timeout: 20_000 }).toEqual([`${first}:one`, `${second}:two`]);
      const third = await append("three");
      await expect.poll(received).toEqual([`${first}:one`, `${second}:two`, `${third}:three`]);
      await page.evaluate(() => (window as unknown as { source: EventSource }).source.close());
      // Both the dropped stream and the closed one were released on the server.
      const health = async () =>
        ((await (await fetch(`${stack.app.url}/healthz`)).json()) as { eventStreams: number }).eventStreams;
      await expect.poll(health).toBe(0);
    } finally {
      await context.close();
      await proxy.close();
    }
  });
});
