/**
 * The app process over real HTTP: GET /projects/:projectId/app-log (SSE)
 * and the Restart / Stop intents of the builder page's action, on the app
 * server (Express, Remix, the Vite module graph), with the project's real
 * local sandbox and its app supervisor. Owner only; wrong ids and malformed
 * requests are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Project } from "../../db/schema";
import type { Sandbox } from "../../sandbox";
import { signedInCookie } from "../support/accounts";
import { createBuilder } from "../support/fixtures";
import { connectEventStream, type EventStreamClient } from "../support/sse";
import { startStack, type Stack } from "../support/stack";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
});

/** The project's sandbox, opened the way a run opens it (the project row then names its provider). */
async function projectSandbox(project: Project): Promise<Sandbox> {
  const { createAgentContext } = await import("../../inngest/agent/context");
  return createAgentContext().sandbox(project.id);
}

async function builder() {
  const { user, project } = await createBuilder(stack.database.db);
  return { user, project, cookie: await signedInCookie(user.id) };
}

const logUrl = (projectId: string, query = "") => `${stack.app.url}/projects/${projectId}/app-log${query}`;

/** Posts a builder-page intent as a form without JavaScript would; the page answers with the action's status and words. */
async function post(projectId: string, cookie: string | null, fields: Record<string, string>) {
  const response = await fetch(`${stack.app.url}/projects/${projectId}?view=logs`, {
    method: "POST",
    headers: cookie ? { Cookie: cookie } : {},
    body: new URLSearchParams(fields),
    redirect: "manual",
  });
  const html = (await response.text())
    .replace(/&#x27;|&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
  return { status: response.status, html };
}

async function nextStatus(client: EventStreamClient, timeoutMs = 10_000) {
  return JSON.parse((await client.nextOf("status", timeoutMs)).data) as Record<string, unknown>;
}

describe("GET /projects/:projectId/app-log", () => {
  it("streams a project that has built nothing as stopped, with nothing to control", async () => {
    const { project, cookie } = await builder();
    const client = await connectEventStream(logUrl(project.id), { cookie });
    try {
      expect(client.response.status).toBe(200);
      expect(client.response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
      expect(await nextStatus(client)).toMatchObject({
        state: "stopped",
        controllable: false,
        reason: expect.stringMatching(/Nothing to run yet/),
      });
    } finally {
      client.close();
    }
  });

  it("answers 401 without a session, 404 for other builders' projects and wrong ids, 400 for a bad resume point", async () => {
    const { project, cookie } = await builder();
    const other = await builder();
    const cases: Array<[string, string | undefined, Record<string, string>, number]> = [
      [logUrl(project.id), undefined, {}, 401],
      [logUrl(other.project.id), cookie, {}, 404],
      [logUrl("00000000-0000-4000-8000-000000000000"), cookie, {}, 404],
      [logUrl("not-a-uuid"), cookie, {}, 404],
      [logUrl(project.id, "?after=abc"), cookie, {}, 400],
      [logUrl(project.id, "?after=-7"), cookie, {}, 400],
      [logUrl(project.id), cookie, { "Last-Event-ID": "1.5" }, 400],
    ];
    for (const [url, withCookie, headers, status] of cases) {
      const client = await connectEventStream(url, { cookie: withCookie, headers });
      expect(client.response.status, `${url} ${JSON.stringify(headers)}`).toBe(status);
      client.close();
    }
  });
});

describe("Restart and Stop", () => {
  it("are the owner's only; wrong ids are 404, malformed intents 400, and nothing built is 409", async () => {
    const { project, cookie } = await builder();
    const other = await builder();
    expect((await post(other.project.id, cookie, { intent: "app-restart" })).status).toBe(404);
    expect((await post("00000000-0000-4000-8000-000000000000", cookie, { intent: "app-stop" })).status).toBe(404);
    expect((await post("not-a-uuid", cookie, { intent: "app-stop" })).status).toBe(404);
    for (const intent of ["app-bogus", "app-restart ", "APP-STOP", ""]) {
      const answer = await post(project.id, cookie, { intent });
      expect(answer.status, `intent ${JSON.stringify(intent)}`).toBe(400);
      expect(answer.html).toContain("Unknown action");
    }
    const nothing = await post(project.id, cookie, { intent: "app-restart" });
    expect(nothing.status).toBe(409);
    expect(nothing.html).toMatch(/role="alert"[^>]*>Nothing to run yet/);
    // A form that is not a form is refused before any intent is read.
    const json = await fetch(`${stack.app.url}/projects/${project.id}`, {
      method: "POST",
      headers: { Cookie: cookie, "Content-Type": "application/json" },
      body: JSON.stringify({ intent: "app-restart" }),
    });
    expect(json.status).toBe(415);
  });
});

const SERVER_JS = `
const http = require("node:http");
const fs = require("node:fs");
if (fs.existsSync("crash.txt")) {
  console.error("Error: " + fs.readFileSync("crash.txt", "utf8").trim());
  process.exit(1);
}
const port = Number(process.env.PORT) || 3000;
console.log("booting the test server");
http
  .createServer((request, response) => {
    console.log("GET " + request.url);
    response.end("<!doctype html><h1>hello from the app</h1>");
  })
  .listen(port, "127.0.0.1", () => console.log("listening on " + port));
`;

/** A project whose workspace has a tiny node http server as its `dev` script. */
async function builtProject() {
  const owner = await builder();
  const sandbox = await projectSandbox(owner.project);
  await sandbox.writeFile(
    "package.json",
    JSON.stringify({ name: "tiny", private: true, scripts: { dev: "node server.js" } }),
  );
  await sandbox.writeFile("server.js", SERVER_JS);
  return { ...owner, sandbox };
}

type Line = { seq: number; stream: string; text: string };

/**
 * Reads the stream (statuses and lines alike, so nothing is skipped) until the status is `state` (when given) and a
 * line's text matches `pattern` (when given). Every log message's id must be its last line's seq.
 */
async function readUntil(
  client: EventStreamClient,
  { state, pattern }: { state?: string; pattern?: RegExp },
  timeoutMs = 30_000,
) {
  const deadline = Date.now() + timeoutMs;
  const lines: Line[] = [];
  let status: Record<string, unknown> | undefined;
  let seenState = state === undefined;
  let seenLine = pattern === undefined;
  while (!(seenState && seenLine)) {
    const message = await client.next(Math.max(1, deadline - Date.now()));
    if (message.event === "status") {
      status = JSON.parse(message.data) as Record<string, unknown>;
      if (status.state === state) seenState = true;
    } else if (message.event === "log") {
      const batch = JSON.parse(message.data) as { lines: Line[] };
      expect(message.id).toBe(String(batch.lines.at(-1)!.seq));
      lines.push(...batch.lines);
      if (pattern && batch.lines.some((line) => pattern.test(line.text))) seenLine = true;
    }
  }
  return { lines, status: status! };
}

describe("a running app", () => {
  it("Restart starts it; the stream shows starting, running and its lines; a reconnect resumes after the last one", async () => {
    const { project, cookie, sandbox } = await builtProject();
    const client = await connectEventStream(logUrl(project.id), { cookie });
    try {
      expect(await nextStatus(client)).toMatchObject({ state: "stopped", controllable: true });
      const answer = await post(project.id, cookie, { intent: "app-restart" });
      expect(answer.status).toBe(200);
      const { lines } = await readUntil(client, { state: "running", pattern: /listening on \d/ });
      expect(lines.map((line) => line.text)).toContain("booting the test server");
      const seqs = lines.map((line) => line.seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

      // A reconnect after the last line gets only what came later.
      const last = seqs.at(-1)!;
      client.close();
      await sandbox.app.appendLog("browser", "TypeError: boom is not a function");
      const again = await connectEventStream(logUrl(project.id), { cookie, lastEventId: last });
      try {
        const { lines: later } = await readUntil(again, { pattern: /TypeError: boom/ });
        expect(later.every((line) => line.seq > last)).toBe(true);
        expect(later.at(-1)).toMatchObject({ stream: "browser", text: "TypeError: boom is not a function" });
      } finally {
        again.close();
      }

      const stopped = await post(project.id, cookie, { intent: "app-stop" });
      expect(stopped.status).toBe(200);
      const after = await connectEventStream(logUrl(project.id, `?after=${last}`), { cookie });
      try {
        await readUntil(after, { state: "stopped" });
      } finally {
        after.close();
      }
    } finally {
      client.close();
      await sandbox.app.stop().catch(() => {});
    }
  });

  it("a crash streams as crashed with its reason and the error on stderr", async () => {
    const { project, cookie, sandbox } = await builtProject();
    await sandbox.writeFile("crash.txt", "Cannot find module './routes'");
    const client = await connectEventStream(logUrl(project.id), { cookie });
    try {
      await nextStatus(client);
      await post(project.id, cookie, { intent: "app-restart" });
      const { lines, status: crashed } = await readUntil(client, { state: "crashed", pattern: /Cannot find module/ });
      expect(crashed.reason).toBeTruthy();
      expect(lines.find((line) => /Cannot find module/.test(line.text))?.stream).toBe("stderr");
    } finally {
      client.close();
      await sandbox.app.stop().catch(() => {});
    }
  });
});
