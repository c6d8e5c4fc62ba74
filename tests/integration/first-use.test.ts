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
import { agentEntries, messages, projects, runEvents, runs, type Run } from "../../db/schema";
import { signUp } from "../support/accounts";
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

function post(pathname: string, cookie: string, fields: Record<string, string>) {
  return fetch(`${stack.app.url}${pathname}`, { method: "POST", body: new URLSearchParams(fields), redirect: "manual", headers: { Cookie: cookie } });
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
    const written = demoScript.turns.filter((t) => t.reply.tool === "write_file").map((t) => t.reply.path!).sort();

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
      const entries = await stack.database.db.select().from(agentEntries).where(eq(agentEntries.runId, run.id)).orderBy(asc(agentEntries.id));
      const actions = entries.filter((e) => e.kind === "action").map((e) => (e.payload.action as { tool: string }).tool);
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
