/**
 * The Inngest engine Dyno builds embeds the dev server's dashboard (docs/decisions/024-engine-dashboard.md):
 * its page, scripts and styles are served with the right types, Monaco (the payload and send-event editors)
 * comes from the engine itself rather than a CDN, and in Chromium the runs page lists a finished run, its
 * payload view and the send-event editor render, and no request leaves the machine.
 *
 * An engine built without the dashboard (DYNO_ENGINE_UI=0, or a failed UI build) skips these tests with the
 * reason; CI builds with it.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it, type TestContext } from "vitest";
import { describeDashboard, MONACO_LOCAL_PATH, readDashboardMarker } from "../../scripts/lib/engine-ui";
import { launchBrowser, screenshot } from "../support/browser";
import { createBuilder } from "../support/fixtures";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

const engineBin = inject("engineBin");
const dashboard = readDashboardMarker(engineBin);
// An engine Dyno did not build (INNGEST_BIN, inngest-cli) is tested too: the released CLI has the dashboard.
const missing =
  dashboard?.included === false
    ? `the engine at ${engineBin} was built ${describeDashboard(dashboard)}; ` +
      "unset DYNO_ENGINE_UI (or set it to 1) and run `npm run engine` to build it with the dashboard"
    : undefined;
if (missing) console.warn(`[engine-dashboard] SKIPPED: ${missing}`);

let stack: Stack | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  if (missing) return;
  stack = await startStack();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

function engineUrl(context: TestContext): string {
  if (missing || !stack) return context.skip(missing ?? "the stack did not start");
  return stack.engine.url;
}

async function get(url: string) {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() };
}

/** The page's own scripts (TanStack Start's shell preloads its modules) and stylesheets, same-origin /assets/. */
function assetsOf(html: string): { scripts: string[]; styles: string[] } {
  const hrefs = (rel: string) =>
    [...html.matchAll(/<link\b[^>]*>/g)]
      .map((m) => m[0])
      .filter((tag) => tag.includes(`rel="${rel}"`))
      .map((tag) => /href="([^"]+)"/.exec(tag)?.[1] ?? "")
      .filter((href) => href.startsWith("/assets/"));
  return { scripts: hrefs("modulepreload"), styles: hrefs("stylesheet") };
}

describe("the engine's dashboard", () => {
  it("serves its page and the scripts and styles the page references", async (context) => {
    const url = engineUrl(context);
    const page = await get(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    // An INNGEST_BIN without a marker may have no dashboard: this is where that shows.
    expect(page.body, `${engineBin} serves no dashboard page`).toContain("Inngest Development Server");

    const { scripts, styles } = assetsOf(page.body);
    expect(scripts.length).toBeGreaterThan(0);
    expect(styles.length).toBeGreaterThan(0);
    const script = await get(`${url}${scripts[0]}`);
    expect(script.status).toBe(200);
    expect(script.type).toMatch(/^(text|application)\/javascript/);
    const style = await get(`${url}${styles[0]}`);
    expect(style.status).toBe(200);
    expect(style.type).toMatch(/^text\/css/);

    // A client-side route (deep link) gets the same page, not a 404.
    const runs = await get(`${url}/runs`);
    expect(runs.status).toBe(200);
    expect(runs.body).toContain("Inngest Development Server");
  });

  it("loads Monaco from the engine itself, not from a CDN", async (context) => {
    const url = engineUrl(context);
    const { scripts } = assetsOf((await get(`${url}/`)).body);
    const bundles = await Promise.all(scripts.map(async (src) => (await get(`${url}${src}`)).body));
    // @monaco-editor/loader keeps its jsdelivr default in the bundle; what counts is the configured local path.
    expect(bundles.some((code) => /paths:\{vs:[^}]*"\/assets\/monaco\/vs"/.test(code))).toBe(true);

    for (const [file, type] of [
      ["loader.js", /javascript/],
      ["editor/editor.main.js", /javascript/],
      ["editor/editor.main.css", /^text\/css/],
      ["base/worker/workerMain.js", /javascript/],
      ["language/json/jsonMode.js", /javascript/],
    ] as const) {
      const asset = await get(`${url}${MONACO_LOCAL_PATH}/${file}`);
      expect(asset.status, file).toBe(200);
      expect(asset.type, file).toMatch(type);
    }
  });

  it("lists a finished run and renders the send-event editor in Chromium, with no request leaving the machine", async (context) => {
    const url = engineUrl(context);
    const { db } = stack!.database;
    const { startRun } = await import("../../app/models/runs.server");
    const { user, project } = await createBuilder(db, { title: "Dashboard check" });
    const run = await startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Build a page that greets me", mode: "build" },
      model: "openai-compatible/greeting-page",
    });
    expect((await waitForRunToFinish(stack!.database, run, 60_000)).type).toBe("complete");

    const page: Page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    const elsewhere: string[] = [];
    const errors: string[] = [];
    // Loopback is fine: the shared components probe http://localhost:8288 (the default dev server) for their
    // "Send to Dev Server" button. Anything else (a CDN, web fonts) would fail offline.
    page.on("request", (request) => {
      const target = new URL(request.url());
      if (["data:", "blob:"].includes(target.protocol)) return;
      if (!["127.0.0.1", "localhost", "[::1]"].includes(target.hostname)) elsewhere.push(target.href);
    });
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      // The app saw the run end; the engine's list says so once it has finalized the run too.
      try {
        await expect
          .poll(
            async () => {
              await page.goto(`${url}/runs`, { waitUntil: "load" });
              const row = page.getByRole("row").filter({ hasText: "Coding agent" });
              await row.first().waitFor({ timeout: 10_000 });
              return row.filter({ hasText: "Completed" }).count();
            },
            { timeout: 40_000, interval: 1_000 },
          )
          .toBe(1);
      } finally {
        await screenshot(page, "engine-dashboard-runs");
      }
      // The run's details: its trigger payload in a Monaco view.
      await page.getByText("Coding agent").first().click();
      try {
        await page.locator(".monaco-editor .view-lines").first().waitFor({ timeout: 30_000 });
        await expect.poll(() => page.locator(".monaco-editor").first().innerText()).toContain("agent/prompt");
      } finally {
        await screenshot(page, "engine-dashboard-run");
      }

      // "load", not "networkidle": the events list polls.
      await page.goto(`${url}/events`, { waitUntil: "load" });
      await page
        .getByRole("button", { name: /send event/i })
        .first()
        .click();
      try {
        // Monaco mounted: its view lines exist only once the editor (loaded from the engine) has rendered.
        await page.locator(".monaco-editor .view-lines").first().waitFor({ timeout: 30_000 });
      } finally {
        await screenshot(page, "engine-dashboard-send-event");
      }

      expect(elsewhere).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
