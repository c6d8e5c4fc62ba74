/**
 * What a new builder meets first, over real HTTP against the whole stack with
 * no model configured (AGENT_MODEL unset): the offline demo, run again and
 * again on one project; the builder page's no-model state and the server's
 * refusal; renaming from both pages; the not-found page; the favicon; and
 * the wording of run-status messages.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, messages, projects, runEvents, runs, users, type Run } from "../../db/schema";
import { markRunStopped } from "../../inngest/run-lifecycle";
import { signUp } from "../support/accounts";
import { createBuilder, createQueuedRun } from "../support/fixtures";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;

beforeAll(async () => {
  delete process.env.AGENT_MODEL;
  stack = await startStack();
  console.log(`[first-use] ${stack.database.driver} database, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

async function builder(): Promise<string> {
  return signUp(stack.app.url, `first-use-${randomUUID()}@example.test`, "correct horse battery");
}

/** What the page shows: its markup without scripts (the loader data in them repeats every message). */
const visible = (html: string) => html.replace(/<script\b[\s\S]*?<\/script>/gi, "");
const occurrences = (text: string, part: string) => text.split(part).length - 1;
const projectTitle = async (id: string) =>
  (await stack.database.db.select().from(projects).where(eq(projects.id, id)))[0]?.title;

function post(pathname: string, cookie: string, fields: Record<string, string>) {
  return fetch(`${stack.app.url}${pathname}`, {
    method: "POST",
    body: new URLSearchParams(fields),
    redirect: "manual",
    headers: { Cookie: cookie },
  });
}

function get(pathname: string, cookie?: string) {
  return fetch(`${stack.app.url}${pathname}`, { redirect: "manual", headers: cookie ? { Cookie: cookie } : {} });
}

async function createProject(cookie: string, title = ""): Promise<string> {
  const response = await post("/projects", cookie, { intent: "create", title });
  expect(response.status).toBe(302);
  return response.headers.get("Location")!.split("/").at(-1)!;
}

const runsOf = (projectId: string) =>
  stack.database.db.select().from(runs).where(eq(runs.projectId, projectId)).orderBy(asc(runs.createdAt));

describe("the offline demo", () => {
  it("replays from its start on every run of a project, not only the first", { timeout: 180_000 }, async () => {
    const cookie = await builder();
    const projectId = await createProject(cookie);
    const demoScript = JSON.parse(readFileSync(path.resolve("model-replay/scripts/todo-page.json"), "utf8")) as {
      turns: { reply: { tool: string; path?: string; message?: string } }[];
    };
    const finalReply = demoScript.turns.at(-1)!.reply.message!;
    const written = demoScript.turns
      .filter((t) => t.reply.tool === "write_file")
      .map((t) => t.reply.path!)
      .sort();

    const finished: Run[] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await post(`/projects/${projectId}`, cookie, { intent: "demo" });
      expect(response.status).toBe(200);
      await response.body?.cancel();
      const run = (await runsOf(projectId)).at(-1)!;
      expect(finished.map((r) => r.id)).not.toContain(run.id);
      expect((await waitForRunToFinish(stack.database, run, 120_000)).type).toBe("complete");
      finished.push((await stack.database.db.select().from(runs).where(eq(runs.id, run.id)))[0]!);
    }

    for (const run of finished) {
      // Every scripted turn, in order: the tool steps, then the reply.
      const entries = await stack.database.db
        .select()
        .from(agentEntries)
        .where(eq(agentEntries.runId, run.id))
        .orderBy(asc(agentEntries.id));
      const actions = entries
        .filter((e) => e.kind === "action")
        .map((e) => (e.payload.action as { tool: string }).tool);
      expect(actions).toEqual(demoScript.turns.slice(0, -1).map((t) => t.reply.tool));
      expect(run).toMatchObject({ status: "complete", iteration: demoScript.turns.length, model: "replay/todo-page" });
      expect([...run.modifiedFiles].sort()).toEqual(written);
      const [reply] = await stack.database.db
        .select()
        .from(messages)
        .where(eq(messages.runId, run.id))
        .then((rows) => rows.filter((m) => m.role === "assistant"));
      expect(reply!.content).toBe(finalReply);
      const events = await stack.database.db.select().from(runEvents).where(eq(runEvents.runId, run.id));
      expect(events.filter((e) => e.type === "files_changed").length).toBeGreaterThanOrEqual(written.length);
    }
    const [project] = await stack.database.db.select().from(projects).where(eq(projects.id, projectId));
    expect(project!.title).toBe("Todo Page");
  });
});

describe("with no model configured", () => {
  it("shows one notice on the builder page, with the box and Send disabled and the demo offered", async () => {
    const cookie = await builder();
    const projectId = await createProject(cookie);
    const response = await get(`/projects/${projectId}`, cookie);
    expect(response.status).toBe(200);
    const page = visible(await response.text());
    expect(occurrences(page, "No model is configured")).toBe(1);
    expect(page).toMatch(/<textarea[^>]*id="prompt"[^>]*disabled=""/);
    expect(page).toMatch(/<button[^>]*value="prompt"[^>]*disabled=""[^>]*>Send</);
    expect(page).toMatch(/<button[^>]*value="demo"[^>]*>Run the offline demo</);
    expect(page).toContain("AGENT_MODEL=openai/gpt-4.1");
    // A builder can add a key without a restart: the notice says where.
    expect(page).toMatch(/Add your own key in <a[^>]*href="\/settings"[^>]*>Settings<\/a>/);
    expect(page).not.toContain('role="alert"');
  });

  it("refuses a prompt in Build and Ask mode alike with a 400 that names the variable, records nothing, and says it once", async () => {
    const cookie = await builder();
    const projectId = await createProject(cookie);
    for (const mode of ["build", "ask"]) {
      // A form post as a browser without JavaScript sends it: the answer is the page again.
      const response = await post(`/projects/${projectId}`, cookie, { intent: "prompt", prompt: "Build a page", mode });
      expect(response.status).toBe(400);
      const page = visible(await response.text());
      expect(occurrences(page, "No model is configured")).toBe(1);
      expect(page).not.toContain('role="alert"');
      // The data request a browser with JavaScript makes gets the reason itself.
      const data = await post(`/projects/${projectId}.data`, cookie, {
        intent: "prompt",
        prompt: "Build a page",
        mode,
      });
      expect(data.status).toBe(400);
      expect(await data.text()).toContain("No model is configured: set AGENT_MODEL");
    }
    expect(await runsOf(projectId)).toHaveLength(0);
  });
});

describe("renaming a project", () => {
  it("refuses a blank title on the list and on the builder page, with a message, and keeps the old one", async () => {
    const cookie = await builder();
    const projectId = await createProject(cookie, "Original");
    for (const blank of ["", "   ", "\u200b"]) {
      const fromList = await post("/projects", cookie, { intent: "rename", projectId, title: blank });
      expect(fromList.status).toBe(400);
      expect(visible(await fromList.text())).toContain("Give the project a title.");
      const fromBuilder = await post(`/projects/${projectId}`, cookie, { intent: "rename", title: blank });
      expect(fromBuilder.status).toBe(400);
      expect(visible(await fromBuilder.text())).toContain("Give the project a title.");
    }
    expect(await projectTitle(projectId)).toBe("Original");
  });

  it("renames from the builder page, only the builder's own project", async () => {
    const cookie = await builder();
    const projectId = await createProject(cookie, "Original");
    const renamed = await post(`/projects/${projectId}`, cookie, { intent: "rename", title: "  Better\nname " });
    expect(renamed.status).toBe(200);
    await renamed.body?.cancel();
    expect(await projectTitle(projectId)).toBe("Better name");

    const stranger = await builder();
    const refused = await post(`/projects/${projectId}`, stranger, { intent: "rename", title: "Mine now" });
    expect(refused.status).toBe(404);
    await refused.body?.cancel();
    expect(await projectTitle(projectId)).toBe("Better name");
  });
});

describe("the not-found page", () => {
  it("answers an unknown address with a 404 page of the app's own, linking back to the projects", async () => {
    const cookie = await builder();
    for (const who of [cookie, undefined]) {
      const response = await get("/no/such/page", who);
      expect(response.status).toBe(404);
      const page = visible(await response.text());
      expect(page).toContain("Page not found");
      expect(page).toContain("<title>Page not found · Dyno</title>");
      expect(page).toMatch(/<a[^>]*href="\/projects"[^>]*>Back to your projects/);
      expect(page).not.toMatch(/No route matches|Error: |at \w+ \(/);
    }
    // A write to it as well.
    const posted = await post("/no/such/page", cookie, { anything: "x" });
    expect(posted.status).toBe(404);
    expect(visible(await posted.text())).toContain("Page not found");
  });

  it("shows the same page for a project that does not exist or is someone else's", async () => {
    const owner = await builder();
    const theirs = await createProject(owner, "Theirs");
    const stranger = await builder();
    for (const pathname of [`/projects/${theirs}`, `/projects/${randomUUID()}`, "/projects/not-a-uuid"]) {
      const response = await get(pathname, stranger);
      expect(response.status).toBe(404);
      const page = visible(await response.text());
      expect(page).toContain("Page not found");
      expect(page).not.toContain("Theirs");
    }
  });
});

describe("the favicon", () => {
  it("is linked from every page and served as an image", async () => {
    const page = await (await get("/login")).text();
    expect(page).toMatch(/<link[^>]*rel="icon"[^>]*href="\/favicon\.svg"/);
    expect(page).toMatch(/<link[^>]*rel="icon"[^>]*href="\/favicon\.ico"/);
    for (const [pathname, type] of [
      ["/favicon.ico", /^image\//],
      ["/favicon.svg", /^image\/svg\+xml/],
    ] as const) {
      const response = await get(pathname);
      expect(response.status, pathname).toBe(200);
      expect(response.headers.get("content-type"), pathname).toMatch(type);
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(100);
    }
  });
});

describe("run-status messages", () => {
  it("say that a finished run has already finished, in words that read", async () => {
    const cookie = await builder();
    const projectId = await createProject(cookie);
    const [user] = await stack.database.db
      .select()
      .from(users)
      .innerJoin(projects, eq(projects.userId, users.id))
      .where(eq(projects.id, projectId));
    const expected = {
      complete: "That run has already finished.",
      failed: "That run has already failed.",
      stopped: "That run has already stopped.",
    };
    for (const [status, message] of Object.entries(expected)) {
      const run = await createQueuedRun(stack.database.db, { userId: user!.users.id, projectId });
      await stack.database.db
        .update(runs)
        .set({ status: status as Run["status"] })
        .where(eq(runs.id, run.id));
      const response = await post(`/projects/${projectId}.data`, cookie, { intent: "stop", runId: run.id });
      expect(response.status).toBe(200);
      expect(await response.text()).toContain(message);
    }
  });

  it("count a stopped run's iterations in proper English", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const expected = new Map([
      [0, "Stopped before the first step."],
      [1, "Stopped after 1 iteration."],
      [3, "Stopped after 3 iterations."],
    ]);
    for (const [iteration, message] of expected) {
      const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
      await db.update(runs).set({ status: "stopping", iteration }).where(eq(runs.id, run.id));
      await markRunStopped(db, run.id);
      const notices = await db.select().from(messages).where(eq(messages.runId, run.id));
      expect(notices.map((m) => m.content)).toEqual([message]);
    }
  });
});
