/**
 * The project list and the builder page's chat actions over real HTTP, as a
 * builder signed up through /signup: create, list, rename and delete
 * projects (a delete stops the run in flight and removes the workspace and
 * every row), and the prompt, retry, stop and demo intents, with the
 * engine running the agent against the replay model. Anything not the
 * builder's own answers 404 and changes nothing; writes from another origin
 * are refused.
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { asc, count, eq, max } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, messages, projects, runEvents, runs, steerMessages, users, type Run } from "../../db/schema";
import { signUp } from "../support/accounts";
import { engineRunsForPrompt } from "../support/engine-api";
import { turn, type Turn } from "../support/model";
import { connectEventStream } from "../support/sse";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

/** The model every prompt sent over HTTP uses (AGENT_MODEL); each test sets what it answers. */
const PROMPT_SCRIPT = "http-prompt";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${PROMPT_SCRIPT}`, AGENT_MAX_REPAIRS: "1" } });
  console.log(`[projects] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

/** What the model answers the next prompts sent over HTTP. */
function promptScript(turns: Turn[]) {
  stack.replay.addScript({ name: PROMPT_SCRIPT, title: "Scripted title", turns });
}

interface Builder {
  userId: string;
  cookie: string;
}

async function builder(): Promise<Builder> {
  const email = `projects-${randomUUID()}@example.test`;
  const cookie = await signUp(stack.app.url, email, "correct horse battery");
  const [user] = await stack.database.db.select().from(users).where(eq(users.email, email));
  return { userId: user!.id, cookie };
}

function post(path: string, who: Builder, fields: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(`${stack.app.url}${path}`, {
    method: "POST",
    body: new URLSearchParams(fields),
    redirect: "manual",
    headers: { Cookie: who.cookie, ...headers },
  });
}

function get(path: string, who: Builder) {
  return fetch(`${stack.app.url}${path}`, { redirect: "manual", headers: { Cookie: who.cookie } });
}

async function createProject(who: Builder, title = ""): Promise<string> {
  const response = await post("/projects", who, { intent: "create", title });
  expect(response.status).toBe(302);
  const match = /^\/projects\/([0-9a-f-]{36})$/.exec(response.headers.get("Location") ?? "");
  expect(match, `Location: ${response.headers.get("Location")}`).not.toBeNull();
  return match![1]!;
}

const chat = (who: Builder, projectId: string, fields: Record<string, string>, headers?: Record<string, string>) =>
  post(`/projects/${projectId}`, who, fields, headers);

const projectRow = async (id: string) =>
  (await stack.database.db.select().from(projects).where(eq(projects.id, id)))[0];
const runsOf = (projectId: string) =>
  stack.database.db.select().from(runs).where(eq(runs.projectId, projectId)).orderBy(asc(runs.createdAt));
const runById = async (id: string) => (await stack.database.db.select().from(runs).where(eq(runs.id, id)))[0];

/** Rows a project owns, table by table. */
async function rowCounts(projectId: string) {
  const { db } = stack.database;
  const countOf = async (table: typeof runs | typeof runEvents | typeof messages | typeof agentEntries) =>
    (await db.select({ n: count() }).from(table).where(eq(table.projectId, projectId)))[0]!.n;
  return {
    projects: (await db.select({ n: count() }).from(projects).where(eq(projects.id, projectId)))[0]!.n,
    runs: await countOf(runs),
    runEvents: await countOf(runEvents),
    messages: await countOf(messages),
    agentEntries: await countOf(agentEntries),
  };
}

/** Sends a prompt over HTTP and returns the run it started. */
async function prompt(who: Builder, projectId: string, text: string, mode: "build" | "ask" = "build"): Promise<Run> {
  const before = (await runsOf(projectId)).length;
  const response = await chat(who, projectId, { intent: "prompt", prompt: text, mode });
  expect(
    response.status,
    await response
      .clone()
      .text()
      .then((t) => t.slice(0, 300)),
  ).toBe(200);
  const after = await runsOf(projectId);
  expect(after).toHaveLength(before + 1);
  return after.at(-1)!;
}

/** Polls until `check` passes (or fails after `timeoutMs` with its last error). */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** Project ids in the order the list page shows them. */
function listedIds(html: string): string[] {
  return [...html.matchAll(/data-project-id="([0-9a-f-]{36})"/g)].map((m) => m[1]!);
}

describe("creating projects", () => {
  it("creates a project with the given title and opens it", async () => {
    const me = await builder();
    const id = await createProject(me, "  My shop  ");
    expect(await projectRow(id)).toMatchObject({ userId: me.userId, title: "My shop" });
    const page = await get(`/projects/${id}`, me);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("My shop");
  });

  it("names a project created without a title “Untitled project”", async () => {
    const me = await builder();
    expect((await projectRow(await createProject(me, "   ")))!.title).toBe("Untitled project");
    expect((await projectRow(await createProject(me)))!.title).toBe("Untitled project");
  });

  it("takes an 80-character title and refuses an 81-character one with a 400 that says why", async () => {
    const me = await builder();
    expect((await projectRow(await createProject(me, "x".repeat(80))))!.title).toBe("x".repeat(80));
    const { listProjects } = await import("../../app/models/projects.server");
    const before = (await listProjects(stack.database.db, me.userId)).length;
    const response = await post("/projects", me, { intent: "create", title: "y".repeat(81) });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("Keep the title under 80 characters.");
    expect(await listProjects(stack.database.db, me.userId)).toHaveLength(before);
  });
});

describe("the project list", () => {
  it("shows only the builder's projects, most recent activity first, with the last run's status", async () => {
    const { listProjects } = await import("../../app/models/projects.server");
    const me = await builder();
    const someoneElse = await builder();
    const theirs = await createProject(someoneElse, "Not mine");
    const a = await createProject(me, "Project A");
    const b = await createProject(me, "Project B");
    // A run in A that finished after B was created: A's last activity is now the latest.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const finishedAt = new Date();
    await stack.database.db.insert(runs).values({
      projectId: a,
      userId: me.userId,
      prompt: "earlier work",
      maxIterations: 5,
      status: "complete",
      createdAt: new Date(Date.now() - 60_000),
      startedAt: new Date(Date.now() - 60_000),
      finishedAt,
    });

    const listed = await listProjects(stack.database.db, me.userId);
    expect(listed.map((p) => [p.id, p.title, p.lastRunStatus])).toEqual([
      [a, "Project A", "complete"],
      [b, "Project B", null],
    ]);
    expect(listed[0]!.lastActivityAt.getTime()).toBe(finishedAt.getTime());

    const page = await get("/projects", me);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(listedIds(html)).toEqual([a, b]);
    expect(html).not.toContain(theirs);
    expect(html).not.toContain("Not mine");
    expect(html).toMatch(/Project A[\s\S]*badge-complete[\s\S]*Project B[\s\S]*No runs yet/);

    // A newer project goes to the top.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const c = await createProject(me, "Project C");
    expect(listedIds(await (await get("/projects", me)).text())).toEqual([c, a, b]);
  });
});

describe("renaming projects", () => {
  it("renames the builder's own project", async () => {
    const me = await builder();
    const id = await createProject(me, "Old name");
    const response = await post("/projects", me, { intent: "rename", projectId: id, title: "  New name " });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("Renamed.");
    expect((await projectRow(id))!.title).toBe("New name");
  });

  it("refuses a blank title with a 400 and keeps the old one", async () => {
    const me = await builder();
    const id = await createProject(me, "Keep me");
    const response = await post("/projects", me, { intent: "rename", projectId: id, title: "   " });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("Give the project a title.");
    expect((await projectRow(id))!.title).toBe("Keep me");
  });

  it("answers 404 for someone else's project (or no project) and changes nothing", async () => {
    const owner = await builder();
    const intruder = await builder();
    const id = await createProject(owner, "Owner's title");
    for (const projectId of [id, randomUUID(), "not-a-uuid", ""]) {
      const response = await post("/projects", intruder, { intent: "rename", projectId, title: "Pwned" });
      expect(response.status, `projectId ${JSON.stringify(projectId)}`).toBe(404);
      await response.body?.cancel();
    }
    expect((await projectRow(id))!.title).toBe("Owner's title");
  });
});

describe("deleting projects", () => {
  it("stops the run in flight (an open page sees it end stopped), then removes the workspace folder and every row", async () => {
    const me = await builder();
    const id = await createProject(me, "Doomed");
    promptScript([
      turn.write("keep.txt", "written before the delete"),
      turn.run("sleep 30; echo late > late.txt"),
      turn.reply("done"),
    ]);
    const run = await prompt(me, id, "work for a while");
    // The command is running in the sandbox when the delete comes.
    await waitForRunEvent(stack.database, {
      projectId: id,
      runId: run.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 2,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const workspace = stack.workspace(id);
    expect(existsSync(`${workspace}/keep.txt`)).toBe(true);
    const before = await rowCounts(id);
    expect(before.runs).toBe(1);
    expect(before.runEvents).toBeGreaterThan(0);
    expect(before.messages).toBeGreaterThan(0);
    expect(before.agentEntries).toBeGreaterThan(0);

    // The builder page, open in another tab, follows the project's events.
    const [latest] = await stack.database.db
      .select({ id: max(runEvents.id) })
      .from(runEvents)
      .where(eq(runEvents.projectId, id));
    const page = await connectEventStream(`${stack.app.url}/projects/${id}/events`, {
      cookie: me.cookie,
      lastEventId: latest!.id!,
    });
    try {
      expect(page.response.status).toBe(200);
      const response = await post("/projects", me, { intent: "delete", projectId: id });
      expect(response.status).toBe(200);
      expect(await response.text()).toContain("Project deleted.");

      const seen: string[] = [];
      while (!seen.includes("stopped")) {
        const event = JSON.parse((await page.nextOf("run-event")).data) as { runId: string; type: string };
        expect(event.runId).toBe(run.id);
        seen.push(event.type);
      }
      expect(seen[0]).toBe("stopping");
      // Nothing but the killed command's own result (and the versions keeping its work) comes between the stop and its end.
      expect(seen.filter((t) => t !== "tool_result" && t !== "version")).toEqual(["stopping", "stopped"]);
    } finally {
      page.close();
    }

    expect(existsSync(workspace)).toBe(false);
    // Its history went with it.
    expect(existsSync(`${stack.dataDir}/history/${id}.git`)).toBe(false);
    expect(await rowCounts(id)).toEqual({ projects: 0, runs: 0, runEvents: 0, messages: 0, agentEntries: 0 });
    expect((await get(`/projects/${id}`, me)).status).toBe(404);
    // The engine is done with it (a cancel that landed, or the run's own stop step), with no failure.
    await eventually(async () => {
      expect(["Cancelled", "Completed"]).toContain((await engineRunsForPrompt(stack.engine.url, run.id))[0]?.status);
    });
    // Nothing that was in flight brings the folder or a row back.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(existsSync(workspace)).toBe(false);
    expect(existsSync(`${stack.dataDir}/history/${id}.git`)).toBe(false);
    expect(await rowCounts(id)).toEqual({ projects: 0, runs: 0, runEvents: 0, messages: 0, agentEntries: 0 });
  });

  it("answers 404 for someone else's project and deletes nothing", async () => {
    const owner = await builder();
    const intruder = await builder();
    const id = await createProject(owner, "Owner's project");
    promptScript([turn.write("index.html", "<h1>hi</h1>"), turn.reply("done")]);
    const run = await prompt(owner, id, "make a page");
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");
    const before = await rowCounts(id);

    const response = await post("/projects", intruder, { intent: "delete", projectId: id });
    expect(response.status).toBe(404);
    await response.body?.cancel();
    expect(await rowCounts(id)).toEqual(before);
    expect(existsSync(`${stack.workspace(id)}/index.html`)).toBe(true);
  });
});

describe("builder actions (POST /projects/:projectId)", () => {
  it("records a prompt and the agent answers it", async () => {
    const me = await builder();
    const id = await createProject(me);
    promptScript([turn.reply("Hello from the agent.")]);
    const run = await prompt(me, id, "  say hello  ");
    expect(run).toMatchObject({
      prompt: "say hello",
      mode: "build",
      model: `openai-compatible/${PROMPT_SCRIPT}`,
      userId: me.userId,
    });
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");
    const transcript = await stack.database.db
      .select()
      .from(messages)
      .where(eq(messages.projectId, id))
      .orderBy(asc(messages.createdAt));
    expect(transcript.map((m) => [m.role, m.content])).toEqual([
      ["user", "say hello"],
      ["assistant", "Hello from the agent."],
    ]);
  });

  it("queues a prompt sent while a run is active for its next step (decision 033), and refuses demo and retry with 409", async () => {
    const me = await builder();
    const id = await createProject(me, "Busy");
    promptScript([turn.run("sleep 30"), turn.reply("done")]);
    const run = await prompt(me, id, "first");
    // The running agent keeps adding events; what a prompt would add is a run and a user message.
    const recorded = async () => ({
      runs: (await runsOf(id)).map((r) => r.prompt),
      userMessages: (await stack.database.db.select().from(messages).where(eq(messages.projectId, id)))
        .filter((m) => m.role === "user")
        .map((m) => m.content),
    });
    expect(await recorded()).toEqual({ runs: ["first"], userMessages: ["first"] });

    const response = await chat(me, id, { intent: "prompt", prompt: "second" });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("Queued: the agent reads it at its next step.");
    const queued = await stack.database.db.select().from(steerMessages).where(eq(steerMessages.projectId, id));
    expect(queued.map((m) => [m.runId, m.content, m.state])).toEqual([[run.id, "second", "queued"]]);
    const demo = await chat(me, id, { intent: "demo" });
    expect(demo.status).toBe(409);
    await demo.body?.cancel();
    const retry = await chat(me, id, { intent: "retry", runId: run.id });
    expect(retry.status).toBe(409);
    await retry.body?.cancel();
    expect(await recorded()).toEqual({ runs: ["first"], userMessages: ["first"] });

    // Stop over HTTP ends it; then prompts are taken again.
    const stop = await chat(me, id, { intent: "stop", runId: run.id });
    expect(stop.status).toBe(200);
    expect(await stop.text()).toContain("Stopping…");
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("stopped");
    const again = await chat(me, id, { intent: "stop", runId: run.id });
    expect(again.status).toBe(200);
    expect(await again.text()).toContain("That run has already stopped.");
  });

  it("starts one run from several prompts sent at once (a double submit, two tabs) and queues the rest for it", async () => {
    const me = await builder();
    const id = await createProject(me, "Double submit");
    promptScript([turn.run("sleep 30"), turn.reply("done")]);
    const responses = await Promise.all(
      Array.from({ length: 4 }, (_, i) => chat(me, id, { intent: "prompt", prompt: `at once ${i}` })),
    );
    await Promise.all(responses.map((r) => r.body?.cancel()));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const started = await runsOf(id);
    expect(started).toHaveLength(1);
    const queued = await stack.database.db.select().from(steerMessages).where(eq(steerMessages.projectId, id));
    expect(queued).toHaveLength(3);
    expect(queued.every((m) => m.runId === started[0]!.id)).toBe(true);
    await (await chat(me, id, { intent: "stop", runId: started[0]!.id })).body?.cancel();
    expect((await waitForRunToFinish(stack.database, started[0]!)).type).toBe("stopped");
  });

  it("retries a failed run as a new run with the same prompt, mode and model", async () => {
    const me = await builder();
    const id = await createProject(me, "Flaky");
    promptScript(Array.from({ length: 8 }, () => turn.raw("not json")));
    const failed = await prompt(me, id, "explain the code", "ask");
    expect((await waitForRunToFinish(stack.database, failed)).type).toBe("failed");
    expect((await runById(failed.id))!.status).toBe("failed");

    const response = await chat(me, id, { intent: "retry", runId: failed.id });
    expect(response.status).toBe(200);
    await response.body?.cancel();
    const all = await runsOf(id);
    expect(all).toHaveLength(2);
    const retried = all[1]!;
    expect(retried.id).not.toBe(failed.id);
    expect(retried).toMatchObject({
      prompt: "explain the code",
      mode: "ask",
      model: failed.model,
      maxIterations: failed.maxIterations,
    });
    expect((await waitForRunToFinish(stack.database, retried)).type).toBe("failed");
    // The failed run itself is left as it was.
    expect((await runById(failed.id))!.status).toBe("failed");
  });

  it("does not retry a run that completed", async () => {
    const me = await builder();
    const id = await createProject(me, "Done already");
    promptScript([turn.reply("All done.")]);
    const done = await prompt(me, id, "say hi");
    expect((await waitForRunToFinish(stack.database, done)).type).toBe("complete");
    const response = await chat(me, id, { intent: "retry", runId: done.id });
    expect(response.status).toBe(409);
    expect(await response.text()).toContain("Only a failed or stopped run can be retried; that one is complete.");
    expect(await runsOf(id)).toHaveLength(1);
  });

  it("answers 404 to a retry or stop naming another project's run, and leaves that run alone", async () => {
    const me = await builder();
    const stranger = await builder();
    const mine = await createProject(me, "Mine");
    const myOther = await createProject(me, "My other");
    const theirs = await createProject(stranger, "Theirs");
    promptScript([turn.run("sleep 30"), turn.reply("done")]);
    const theirRun = await prompt(stranger, theirs, "their work");
    const myOtherRun = await prompt(me, myOther, "my other work");
    await waitForRunEvent(stack.database, {
      projectId: theirs,
      runId: theirRun.id,
      until: (row) => row.type === "tool_call",
    });

    for (const runId of [theirRun.id, myOtherRun.id, randomUUID(), "not-a-uuid"]) {
      for (const intent of ["stop", "retry"]) {
        const response = await chat(me, mine, { intent, runId });
        expect(response.status, `${intent} ${runId}`).toBe(404);
        expect(await response.text()).toContain("Run not found");
      }
    }
    expect(await runsOf(mine)).toHaveLength(0);
    expect((await runById(theirRun.id))!.status).toBe("running");
    expect((await runById(myOtherRun.id))!.status).not.toBe("stopping");

    for (const [who, projectId, run] of [
      [stranger, theirs, theirRun],
      [me, myOther, myOtherRun],
    ] as const) {
      await (await chat(who, projectId, { intent: "stop", runId: run.id })).body?.cancel();
      expect((await waitForRunToFinish(stack.database, run)).type).toBe("stopped");
    }
  });

  it("starts the offline demo as a replay run", async () => {
    const me = await builder();
    const id = await createProject(me);
    const { DEMO } = await import("../../inngest/agent/demo");
    const response = await chat(me, id, { intent: "demo" });
    expect(response.status).toBe(200);
    await response.body?.cancel();
    const [run] = await runsOf(id);
    expect(run).toMatchObject({ model: "replay/todo-page", prompt: DEMO.prompt, mode: "build" });
    const started = await waitForRunEvent(stack.database, {
      projectId: id,
      runId: run!.id,
      until: (row) => row.type === "starting",
    });
    expect(started.data).toMatchObject({ replay: true, model: "replay/todo-page" });
    await (await chat(me, id, { intent: "stop", runId: run!.id })).body?.cancel();
    expect(["stopped", "complete"]).toContain((await waitForRunToFinish(stack.database, run!)).type);
  });

  it("answers 404 for a project id that is not a uuid, or not the builder's", async () => {
    const me = await builder();
    const stranger = await builder();
    const theirs = await createProject(stranger, "Theirs");
    for (const projectId of ["not-a-uuid", "1", randomUUID(), theirs]) {
      const page = await get(`/projects/${projectId}`, me);
      expect(page.status, `GET ${projectId}`).toBe(404);
      await page.body?.cancel();
      const response = await chat(me, projectId, { intent: "prompt", prompt: "hello" });
      expect(response.status, `POST ${projectId}`).toBe(404);
      await response.body?.cancel();
    }
    expect(await rowCounts(theirs)).toMatchObject({ projects: 1, runs: 0, messages: 0 });
  });

  it("refuses an oversized prompt with a 400 naming the limit, and a blank one, recording nothing", async () => {
    const me = await builder();
    const id = await createProject(me);
    const response = await chat(me, id, { intent: "prompt", prompt: "x".repeat(20_001) });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("Prompts are limited to 20,000 characters.");
    const blank = await chat(me, id, { intent: "prompt", prompt: "   " });
    expect(blank.status).toBe(400);
    expect(await blank.text()).toContain("Write a prompt first.");
    expect(await rowCounts(id)).toMatchObject({ projects: 1, runs: 0, messages: 0, runEvents: 0 });
  });

  it("answers 400 to an unknown intent", async () => {
    const me = await builder();
    const id = await createProject(me);
    const response = await chat(me, id, { intent: "launch-missiles" });
    expect(response.status).toBe(400);
    await response.body?.cancel();
    expect(await rowCounts(id)).toMatchObject({ runs: 0 });
  });
});

describe("cross-origin writes", () => {
  it("refuses a POST from another origin with a 403 and creates nothing; a same-origin one passes", async () => {
    const { listProjects } = await import("../../app/models/projects.server");
    const me = await builder();
    for (const origin of [
      "http://evil.example",
      "null",
      `${stack.app.url.replace("127.0.0.1", "localhost")}`,
      stack.app.previewUrl,
      // A project's preview origin: a built page's own writes to the builder are refused too.
      stack.app.previewOriginFor(randomUUID()),
    ]) {
      const response = await post("/projects", me, { intent: "create", title: "CSRF" }, { Origin: origin });
      expect(response.status, origin).toBe(403);
      await response.body?.cancel();
    }
    expect(await listProjects(stack.database.db, me.userId)).toHaveLength(0);

    const id = await createProjectFrom(me, stack.app.url);
    expect(await listProjects(stack.database.db, me.userId)).toHaveLength(1);

    const prompted = await chat(me, id, { intent: "prompt", prompt: "from evil" }, { Origin: "http://evil.example" });
    expect(prompted.status).toBe(403);
    await prompted.body?.cancel();
    const deleted = await post("/projects", me, { intent: "delete", projectId: id }, { Origin: "http://evil.example" });
    expect(deleted.status).toBe(403);
    await deleted.body?.cancel();
    expect(await rowCounts(id)).toMatchObject({ projects: 1, runs: 0, messages: 0 });
  });
});

async function createProjectFrom(who: Builder, origin: string): Promise<string> {
  const response = await post("/projects", who, { intent: "create", title: "Same origin" }, { Origin: origin });
  expect(response.status).toBe(302);
  return /\/projects\/([0-9a-f-]{36})$/.exec(response.headers.get("Location")!)![1]!;
}
