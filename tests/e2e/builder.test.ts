/**
 * The builder's journeys in a real browser (chromium through playwright-core)
 * against the whole stack: the app in development mode, the real Inngest
 * engine, the local sandbox and the replay stand-in for the model (the app's
 * AGENT_MODEL names one script, rewritten before each journey; every journey
 * uses a new project, so the script starts from its first turn).
 *
 * Screenshots of the builder during and after a run are saved under
 * test-results/screenshots/.
 */
import { and, eq } from "drizzle-orm";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projects, runEvents, runs, users } from "../../db/schema";
import type { ReplayScript } from "../../model-replay/script";
import { gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-builder";
const PASSWORD = "a long enough password";

let stack: Stack;
let browser: Browser;
let builder: BrowserContext;
let page: Page;
const email = `builder-${Date.now()}@example.test`;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${SCRIPT}` } });
  browser = await launchBrowser();
  builder = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await builder.newPage();
  page.on("pageerror", (error) => console.error(`[builder page] ${error.message}`));
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

function useScript(turns: Turn[], extra: Partial<ReplayScript> = {}) {
  stack.replay.addScript({ name: SCRIPT, turns, ...extra } as ReplayScript);
}

let signedUp = false;

async function signUpInBrowser(target: Page, address: string) {
  await gotoHydrated(target, `${stack.app.url}/signup`);
  await target.getByLabel("Email").fill(address);
  await target.getByLabel("Password").fill(PASSWORD);
  await target.getByRole("button", { name: "Create your account" }).click();
  await target.waitForURL(/\/projects$/);
  if (target === page) signedUp = true;
}

/** Creates a project from the list page and returns its id (the builder page is open afterwards). */
async function createProject(title: string): Promise<string> {
  // Each journey can run alone (vitest -t): the first one signs up through the form, the others reuse it.
  if (!signedUp) await signUpInBrowser(page, email);
  await gotoHydrated(page, `${stack.app.url}/projects`);
  await page.getByPlaceholder(/Title/).fill(title);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  await gotoHydrated(page, page.url());
  return page.url().split("/").at(-1)!;
}

async function sendPrompt(text: string) {
  const box = page.getByRole("textbox", { name: "Prompt" });
  await box.click();
  await box.fill(text);
  await box.press("Enter");
}

const liveCard = () => page.locator(".live-card");
const liveStatus = () => liveCard().getAttribute("data-status");

/** The iteration the card is at (its label reads "Iteration n of max" while running, "Done in n iterations" at the end). */
async function iterationShown(): Promise<number> {
  return Number((await liveCard().locator(".live-progress").getAttribute("data-iteration")) ?? NaN);
}

const GREETING_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Greeter</title><link rel="stylesheet" href="style.css"></head>
<body><h1 id="greeting">Hello from the sandbox</h1><script src="app.js"></script></body></html>`;

describe("the builder in a browser", () => {
  let firstProjectId: string | undefined;

  it("signs up, creates a project, sends a prompt, watches the live card advance, sees the preview and opens a file", async () => {
    useScript([
      turn.todos(["Write the page", "in_progress"], ["Style it", "pending"]),
      turn.write("index.html", GREETING_PAGE, { delayMs: 700 }),
      turn.write("style.css", "h1 { color: rgb(67, 56, 202); font-family: sans-serif; }", { delayMs: 700 }),
      turn.write("app.js", 'document.body.dataset.ready = "yes";', { delayMs: 700 }),
      turn.todos(["Write the page", "completed"], ["Style it", "completed"]),
      // A command that takes a while: the card shows it in flight.
      turn.run("sleep 1.5 && ls", { delayMs: 700 }),
      turn.reply("Done: **a greeting page**.\n\n- `index.html`: the page\n- `style.css`: its colour"),
    ]);

    await signUpInBrowser(page, email);
    await expect.poll(() => page.getByText("No projects yet").count()).toBe(1);

    firstProjectId = await createProject("Greeter");
    await expect.poll(() => page.locator("h1.project-name").textContent()).toBe("Greeter");

    // Shift+Enter is a new line in the prompt, Enter sends it.
    const box = page.getByRole("textbox", { name: "Prompt" });
    await box.click();
    await box.type("Build a page that greets me");
    await box.press("Shift+Enter");
    await box.type("in indigo");
    expect(await box.inputValue()).toBe("Build a page that greets me\nin indigo");
    await box.press("Enter");

    // The live card advances: we see several iterations, the tool in flight and the plan.
    const seen = new Set<number>();
    const tools = new Set<string>();
    await expect
      .poll(
        async () => {
          if ((await liveCard().count()) === 0) return false;
          seen.add(await iterationShown());
          const now = await liveCard()
            .locator(".live-now")
            .textContent()
            .catch(() => null);
          if (now) tools.add(now);
          if (seen.size === 3) await screenshot(page, "builder-during-run");
          return (await liveStatus()) === "complete";
        },
        { timeout: 60_000, interval: 150 },
      )
      .toBe(true);
    const partial = [...seen].filter((n) => n > 0 && n < 7);
    expect(partial.length, `iterations seen while running: ${[...seen].join(", ")}`).toBeGreaterThanOrEqual(2);
    expect(
      [...tools].some((t) => /run_command\s*Run `sleep 1\.5 && ls`/.test(t)),
      [...tools].join(" | "),
    ).toBe(true);
    expect(await iterationShown()).toBe(7);
    expect(await liveCard().locator(".live-progress label").textContent()).toBe("Done in 7 iterations");
    await expect.poll(() => liveCard().locator(".todo-completed").count()).toBe(2);
    expect(await liveCard().locator(".changed-files li").allTextContents()).toEqual([
      "app.js",
      "index.html",
      "style.css",
    ]);

    // The box opens again; the reply is rendered as Markdown.
    await expect.poll(() => page.getByRole("textbox", { name: "Prompt" }).isDisabled()).toBe(false);
    const reply = page.locator(".message-assistant").last();
    await expect.poll(() => reply.locator("strong").textContent()).toBe("a greeting page");
    expect(await reply.locator("li code").allTextContents()).toEqual(["index.html", "style.css"]);
    expect(await page.locator(".message-user").last().textContent()).toContain(
      "Build a page that greets me\nin indigo",
    );

    // The preview shows the built page, styled and with its script run.
    const preview = page.frameLocator("iframe.preview-frame");
    await expect
      .poll(
        () =>
          preview
            .locator("#greeting")
            .textContent({ timeout: 2_000 })
            .catch(() => null),
        { timeout: 15_000 },
      )
      .toBe("Hello from the sandbox");
    await expect
      .poll(
        () =>
          preview
            .locator("body")
            .getAttribute("data-ready", { timeout: 2_000 })
            .catch(() => null),
        { timeout: 15_000 },
      )
      .toBe("yes");
    expect(await preview.locator("#greeting").evaluate((el) => getComputedStyle(el).color)).toBe("rgb(67, 56, 202)");
    await screenshot(page, "builder-after-run");

    // The file tree and a highlighted, read-only view of a file.
    await page.locator("nav.tabs").getByRole("link", { name: "Files" }).click();
    await page.getByRole("navigation", { name: "Project files" }).getByRole("link", { name: "index.html" }).click();
    await page.waitForURL(/file=index\.html/);
    const code = page.locator("pre code.hljs");
    await expect.poll(() => code.locator(".hljs-tag").count()).toBeGreaterThan(3);
    expect(await code.textContent()).toContain('<h1 id="greeting">Hello from the sandbox</h1>');
    await screenshot(page, "builder-files");

    // Run history: status, duration, iterations, tokens.
    await page.locator("nav.tabs").getByRole("link", { name: /Runs/ }).click();
    const row = page.locator("table.run-history tbody tr").first();
    await expect.poll(() => row.textContent()).toContain("Complete");
    expect(await row.textContent()).toMatch(/7 \/ 50/);
    expect(await row.textContent()).toMatch(/\d+ s/);
  });

  it("fits half a laptop screen: no sideways scrolling, chat and result stacked", async () => {
    firstProjectId ??= await createProject("Greeter");
    const half = await builder.newPage();
    try {
      await half.setViewportSize({ width: 683, height: 768 });
      await gotoHydrated(half, `${stack.app.url}/projects/${firstProjectId}?view=runs`);
      const overflow = await half.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      expect(overflow).toBeLessThanOrEqual(0);
      const chat = await half.getByRole("region", { name: "Chat" }).boundingBox();
      const result = await half.getByRole("region", { name: "Result" }).boundingBox();
      expect(result!.y).toBeGreaterThanOrEqual(chat!.y + chat!.height - 1);
      expect(await half.getByRole("textbox", { name: "Prompt" }).isVisible()).toBe(true);
      await screenshot(half, "builder-half-laptop");
    } finally {
      await half.close();
    }
  });

  it("stops a second run mid-way: Stopping at once, then Stopped", async () => {
    // Same project: the script's turns continue from where the first run left off.
    useScript([
      turn.todos(["Write the page", "completed"], ["Style it", "completed"]),
      turn.write("index.html", GREETING_PAGE),
      turn.write("style.css", "h1 { color: rgb(67, 56, 202); font-family: sans-serif; }"),
      turn.write("app.js", 'document.body.dataset.ready = "yes";'),
      turn.todos(["Write the page", "completed"], ["Style it", "completed"]),
      turn.run("ls"),
      turn.reply("Done: **a greeting page**."),
      ...Array.from({ length: 30 }, (_, i) => turn.run(`echo ${i} >> slow.txt`, { delayMs: 1_000 })),
    ]);
    await gotoHydrated(page, `${stack.app.url}/projects/${firstProjectId!}`);
    await sendPrompt("Now add a footer");
    await expect.poll(() => liveStatus(), { timeout: 30_000 }).toBe("running");
    await expect.poll(() => iterationShown(), { timeout: 30_000 }).toBeGreaterThanOrEqual(2);

    // Shown at once, before the engine has done anything. The stop itself can finish in a few hundred ms,
    // so the state is recorded by an observer as it appears rather than looked for afterwards.
    await page.evaluate(() => {
      new MutationObserver(() => {
        const shown = [...document.querySelectorAll("button")].some(
          (button) => button.textContent === "Stopping…" && button.disabled,
        );
        if (shown) (window as unknown as { stoppingShown?: boolean }).stoppingShown = true;
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await liveCard().getByRole("button", { name: "Stop" }).click();
    await expect
      .poll(() => page.evaluate(() => (window as unknown as { stoppingShown?: boolean }).stoppingShown))
      .toBe(true);
    await expect.poll(() => liveStatus(), { timeout: 20_000 }).toBe("stopped");
    expect(await liveCard().locator(".badge").textContent()).toBe("Stopped");
    expect(await liveCard().getByRole("button", { name: /Stop/ }).count()).toBe(0);
    await expect
      .poll(() => page.locator(".message-system").last().textContent())
      .toMatch(/Stopped after \d+ iteration/);
    const [latest] = await stack.database.db
      .select()
      .from(runs)
      .where(eq(runs.projectId, firstProjectId!))
      .orderBy(runs.createdAt)
      .then((rows) => rows.slice(-1));
    expect(latest?.status).toBe("stopped");
    expect(latest?.prompt).toBe("Now add a footer");
  });

  it("shows the progress so far after a reload mid-run, then the rest, each step once; Esc stops", async () => {
    const steps = 8;
    useScript([
      ...Array.from({ length: steps }, (_, i) => turn.run(`echo step-${i + 1} >> log.txt`, { delayMs: 600 })),
      turn.reply("All steps done."),
    ]);
    const projectId = await createProject("Reloader");
    await sendPrompt("Do the steps");
    await expect.poll(() => iterationShown(), { timeout: 30_000 }).toBeGreaterThanOrEqual(4);

    await gotoHydrated(page, page.url());
    // Straight after the reload: what happened so far, from the server's render and the replayed stream.
    const afterReload = await iterationShown();
    expect(afterReload).toBeGreaterThanOrEqual(4);
    await screenshot(page, "builder-after-reload-mid-run");

    await expect.poll(() => liveStatus(), { timeout: 60_000 }).toBe("complete");
    // Every tool call shows exactly once, in order.
    const finished = liveCard().locator(".steps li");
    expect(await finished.count()).toBe(steps);
    const lines = await finished.allTextContents();
    expect(lines.map((l) => /step-(\d+)/.exec(l)?.[1])).toEqual(Array.from({ length: steps }, (_, i) => String(i + 1)));
    const calls = await stack.database.db
      .select()
      .from(runEvents)
      .where(and(eq(runEvents.projectId, projectId), eq(runEvents.type, "tool_call")));
    expect(calls).toHaveLength(steps);

    // Esc stops the next run.
    useScript([
      ...Array.from({ length: steps }, (_, i) => turn.run(`echo step-${i + 1} >> log.txt`)),
      turn.reply("All steps done."),
      ...Array.from({ length: 30 }, (_, i) => turn.run(`echo more-${i} >> log.txt`, { delayMs: 1_000 })),
    ]);
    await sendPrompt("Keep going");
    await expect.poll(() => liveStatus(), { timeout: 30_000 }).toBe("running");
    await page.keyboard.press("Escape");
    await expect.poll(() => liveStatus(), { timeout: 20_000 }).toBe("stopped");
  });

  it("shows why a run failed and retries the same prompt", async () => {
    // Nothing the model says parses: after AGENT_MAX_REPAIRS (3) repairs the run fails.
    useScript(Array.from({ length: 6 }, () => turn.raw("I would rather chat than pick a tool.")));
    await createProject("Flaky model");
    await sendPrompt("Build a clock");
    await expect.poll(() => liveStatus(), { timeout: 60_000 }).toBe("failed");
    expect(await liveCard().locator(".live-error").textContent()).toMatch(/repair|could not|unusable|parse/i);
    await expect
      .poll(() => page.locator(".message-system").last().textContent())
      .toMatch(/The run failed: The model's reply could not be used/);

    // Whatever turn the retry starts at, the model now answers.
    useScript(Array.from({ length: 20 }, () => turn.reply("Here is your **clock**.")));
    await page.getByRole("button", { name: "Retry this prompt" }).click();
    await expect.poll(() => liveStatus(), { timeout: 60_000 }).toBe("complete");
    expect(await page.locator(".message-user p").allTextContents()).toEqual(["Build a clock", "Build a clock"]);
    await expect.poll(() => page.locator(".message-assistant strong").last().textContent()).toBe("clock");
  });

  it("renames and deletes projects from the list", async () => {
    const projectId = await createProject("Scratch");
    await gotoHydrated(page, `${stack.app.url}/projects`);
    const item = page.locator(`li[data-project-id="${projectId}"]`);
    await item.locator("summary", { hasText: "Rename" }).click();
    await item.getByLabel(/New title/).fill("Scratch, renamed");
    await item.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => item.locator(".project-title").textContent()).toBe("Scratch, renamed");
    expect(await item.locator("details.popover[open]").count()).toBe(0); // the rename form closed
    expect(await page.locator(".project-title").first().textContent()).toBe("Scratch, renamed"); // most recent first
    await screenshot(page, "projects-list");

    await item.getByRole("link", { name: /Delete Scratch, renamed/ }).click();
    await item.getByRole("button", { name: "Delete project" }).click();
    await expect.poll(() => page.locator(`li[data-project-id="${projectId}"]`).count()).toBe(0);
    expect(await stack.database.db.select().from(projects).where(eq(projects.id, projectId))).toEqual([]);
  });

  it("does not show or stream one builder's project to another", async () => {
    const other = await browser.newContext();
    const stranger = await other.newPage();
    try {
      firstProjectId ??= await createProject("Greeter");
      await signUpInBrowser(stranger, `stranger-${Date.now()}@example.test`);
      expect(await stranger.getByText("Greeter").count()).toBe(0);

      const response = await stranger.goto(`${stack.app.url}/projects/${firstProjectId}`);
      expect(response?.status()).toBe(404);
      expect(await stranger.getByText("Greeter").count()).toBe(0);

      const probes = await stranger.evaluate(async (id) => {
        const status = async (url: string, init?: RequestInit) => (await fetch(url, init)).status;
        return {
          events: await status(`/projects/${id}/events`, { headers: { Accept: "text/event-stream" } }),
          download: await status(`/projects/${id}/download`),
          file: await status(`/projects/${id}?view=files&file=index.html`),
          stop: await status(`/projects/${id}`, {
            method: "POST",
            body: new URLSearchParams({ intent: "prompt", prompt: "hi" }),
          }),
        };
      }, firstProjectId);
      expect(probes).toEqual({ events: 404, download: 404, file: 404, stop: 404 });
      // The owner's project got no run from the stranger's post.
      const owned = await stack.database.db.select().from(runs).where(eq(runs.projectId, firstProjectId!));
      expect(owned.map((r) => r.prompt)).not.toContain("hi");
    } finally {
      await other.close();
    }
  });

  it("keeps a built page in the preview from acting as the signed-in builder", async () => {
    const [owner] = await stack.database.db.select().from(users).where(eq(users.email, email));
    const projectCount = async () =>
      (await stack.database.db.select().from(projects).where(eq(projects.userId, owner!.id))).length;
    const projectId = await createProject("Hostile page");
    const before = await projectCount();
    const app = stack.app.url;
    // The page tries everything a script on the builder's origin could do.
    const attack = `<!doctype html><html><body><pre id="results">running</pre><script>
      const results = {};
      const attempt = async (name, fn) => { try { results[name] = "succeeded: " + String(await fn()).slice(0, 200); } catch (e) { results[name] = "blocked: " + e.name; } };
      (async () => {
        await attempt("readProjects", async () => (await fetch(${JSON.stringify(app)} + "/projects", { credentials: "include" })).text());
        await attempt("readEvents", async () => (await fetch(${JSON.stringify(app)} + "/projects/${projectId}/events", { credentials: "include", headers: { Accept: "text/event-stream" } })).status);
        await attempt("readParent", async () => window.parent.document.body.innerHTML);
        await attempt("readCookie", async () => { if (document.cookie.includes("__dyno_session")) return document.cookie; throw new DOMException("no session cookie here", "NotReadable"); });
        await attempt("createProject", async () => (await fetch(${JSON.stringify(app)} + "/projects", { method: "POST", mode: "no-cors", credentials: "include", body: new URLSearchParams({ intent: "create", title: "made by the preview" }) })).type);
        document.getElementById("results").textContent = JSON.stringify(results);
      })();
    </script></body></html>`;
    useScript([turn.write("index.html", attack), turn.reply("Built.")]);
    await sendPrompt("Build the page");
    await expect.poll(() => liveStatus(), { timeout: 60_000 }).toBe("complete");

    const frame = page.frameLocator("iframe.preview-frame");
    let results: Record<string, string> = {};
    await expect
      .poll(
        async () => {
          const text = await frame
            .locator("#results")
            .textContent({ timeout: 2_000 })
            .catch(() => "running");
          if (!text || text === "running") return false;
          results = JSON.parse(text) as Record<string, string>;
          return true;
        },
        { timeout: 20_000 },
      )
      .toBe(true);
    expect(results.readProjects).toMatch(/^blocked/);
    expect(results.readEvents).toMatch(/^blocked/);
    expect(results.readParent).toMatch(/^blocked: SecurityError/);
    expect(results.readCookie).toMatch(/^blocked/);
    // A no-cors write is sent but its answer is opaque; the server refuses it as cross-origin.
    expect(await projectCount()).toBe(before);

    // The same reads from the builder's own page succeed: the checks above can fail.
    const own = await page.evaluate(async () => (await fetch("/projects")).status);
    expect(own).toBe(200);
  });
});

describe("the builder without JavaScript", () => {
  it("signs up, creates a project, sends a prompt, sees it finish, reads a file and stops a run, all with plain forms", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
    const plain = await context.newPage();
    try {
      await plain.goto(`${stack.app.url}/signup`);
      await plain.getByLabel("Email").fill(`no-js-${Date.now()}@example.test`);
      await plain.getByLabel("Password").fill(PASSWORD);
      await plain.getByRole("button", { name: "Create your account" }).click();
      await plain.waitForURL(/\/projects$/);
      await plain.getByPlaceholder(/Title/).fill("Plain forms");
      await plain.getByRole("button", { name: "Create project" }).click();
      await plain.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
      const projectUrl = plain.url();
      // No event stream without JavaScript: the status as a fresh load of the page shows it.
      const statusAfterReload = async () => {
        await plain.goto(projectUrl);
        return plain.locator(".live-card").getAttribute("data-status");
      };

      useScript([turn.write("index.html", GREETING_PAGE), turn.reply("Made **it**.")]);
      await plain.getByRole("textbox", { name: "Prompt" }).fill("Greet me, no scripts");
      await plain.getByRole("button", { name: "Send" }).click();
      await plain.waitForLoadState("load");
      // The page after the post shows the prompt and its run; it refreshes itself while the run is active.
      expect(await plain.locator(".message-user").last().textContent()).toContain("Greet me, no scripts");
      await expect.poll(statusAfterReload, { timeout: 60_000, interval: 1_000 }).toBe("complete");
      expect(await plain.locator(".message-assistant strong").last().textContent()).toBe("it");

      await plain.goto(`${projectUrl}?view=files&file=index.html`);
      expect(await plain.locator("pre code.hljs").textContent()).toContain("Hello from the sandbox");

      useScript([
        turn.write("index.html", GREETING_PAGE),
        turn.reply("Made **it**."),
        ...Array.from({ length: 30 }, (_, i) => turn.run(`echo ${i} >> slow.txt`, { delayMs: 1_000 })),
      ]);
      await plain.goto(projectUrl);
      await plain.getByRole("textbox", { name: "Prompt" }).fill("Keep going slowly");
      await plain.getByRole("button", { name: "Send" }).click();
      await plain.waitForLoadState("load");
      await expect.poll(statusAfterReload, { timeout: 30_000, interval: 500 }).toBe("running");
      await plain.locator(".live-card").getByRole("button", { name: "Stop" }).click();
      await plain.waitForLoadState("load");
      await expect.poll(statusAfterReload, { timeout: 30_000, interval: 1_000 }).toBe("stopped");
    } finally {
      await context.close();
    }
  });
});
