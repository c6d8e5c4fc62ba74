/**
 * Steering a working run (decision 033) through the real engine, the app's
 * HTTP actions and the replay model: a message sent while a command runs is
 * in the next model request exactly once; a withdrawn one is in none; one the
 * run ended before reading is offered again and can become the next prompt;
 * the actions are the owner's only and bounded like a prompt.
 */
import { randomUUID } from "node:crypto";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runEvents, runs, steerMessages, users } from "../../db/schema";
import { signUp } from "../support/accounts";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

/** The model every prompt sent over HTTP uses (AGENT_MODEL); each test sets what it answers. */
const PROMPT_SCRIPT = "steering-prompt";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_MODEL: `openai-compatible/${PROMPT_SCRIPT}` } });
  console.log(`[steering] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

function promptScript(turns: Turn[]) {
  stack.replay.addScript({ name: PROMPT_SCRIPT, turns });
}

interface Builder {
  cookie: string;
}

async function builder(): Promise<Builder> {
  const email = `steering-${randomUUID()}@example.test`;
  const cookie = await signUp(stack.app.url, email, "correct horse battery");
  const [user] = await stack.database.db.select().from(users).where(eq(users.email, email));
  expect(user).toBeDefined();
  return { cookie };
}

function post(path: string, who: Builder, fields: Record<string, string>) {
  return fetch(`${stack.app.url}${path}`, {
    method: "POST",
    body: new URLSearchParams(fields),
    redirect: "manual",
    headers: { Cookie: who.cookie },
  });
}

async function createProject(who: Builder): Promise<string> {
  const response = await post("/projects", who, { intent: "create", title: "Steered" });
  expect(response.status).toBe(302);
  return /([0-9a-f-]{36})$/.exec(response.headers.get("Location") ?? "")![1]!;
}

/** Posts a chat intent (Remix's data request) and returns its status and body. */
async function chat(who: Builder, projectId: string, fields: Record<string, string>) {
  const response = await post(`/projects/${projectId}.data`, who, fields);
  return { status: response.status, text: await response.text() };
}

const runsOf = (projectId: string) =>
  stack.database.db.select().from(runs).where(eq(runs.projectId, projectId)).orderBy(asc(runs.createdAt));
const steersOf = (projectId: string) =>
  stack.database.db
    .select()
    .from(steerMessages)
    .where(eq(steerMessages.projectId, projectId))
    .orderBy(asc(steerMessages.createdAt));

/** How many times `text` occurs in each model request that carries it at all. */
const occurrencesInRequests = (text: string) =>
  stack.replay.recentPrompts.filter((p) => p.includes(text)).map((p) => p.split(text).length - 1);

/** Starts a run over HTTP and waits until its first command runs. */
async function runWithSlowCommand(who: Builder, projectId: string) {
  expect((await chat(who, projectId, { intent: "prompt", prompt: "build it" })).status).toBe(200);
  const [run] = await runsOf(projectId);
  await waitForRunEvent(stack.database, {
    projectId,
    runId: run!.id,
    until: (row) => row.type === "tool_call" && row.data.iteration === 1,
  });
  return run!;
}

describe("steering a working run", () => {
  it("gives a message sent while a command runs to the agent at its next step, exactly once", async () => {
    const me = await builder();
    const id = await createProject(me);
    promptScript([turn.run("sleep 4"), turn.write("a.txt", "a"), turn.reply("Done, in blue.")]);
    const run = await runWithSlowCommand(me, id);
    const marker = `make it blue ${randomUUID()}`;
    const queued = await chat(me, id, { intent: "prompt", prompt: marker });
    expect(queued.status).toBe(200);
    expect(queued.text).toContain("Queued: the agent reads it at its next step.");
    // Not a second run: the message waits for this one.
    expect(await runsOf(id)).toHaveLength(1);

    expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");
    // The request of step 2 carries it, and so does step 3's (the conversation so far): once in each.
    expect(occurrencesInRequests(`The builder added, while you were working:\n\n${marker}`)).toEqual([1, 1]);
    expect((await steersOf(id)).map((m) => [m.state, m.deliveredIteration])).toEqual([["delivered", 2]]);
    const events = await stack.database.db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(events.filter((e) => e.type === "steer_delivered").map((e) => [e.data.iteration, e.writes])).toEqual([
      [2, 1],
    ]);
    // The builder's page shows it as delivered at step 2.
    const page = await fetch(`${stack.app.url}/projects/${id}`, { headers: { Cookie: me.cookie } });
    expect(await page.text()).toContain("Read by the agent at step 2");
  });

  it("leaves no trace of a message withdrawn before the next step in any model request", async () => {
    const me = await builder();
    const id = await createProject(me);
    promptScript([turn.run("sleep 4"), turn.reply("Done.")]);
    const run = await runWithSlowCommand(me, id);
    const kept = `kept ${randomUUID()}`;
    const withdrawn = `withdrawn ${randomUUID()}`;
    await chat(me, id, { intent: "prompt", prompt: kept });
    await chat(me, id, { intent: "prompt", prompt: withdrawn });
    const toWithdraw = (await steersOf(id)).find((m) => m.content === withdrawn)!;
    const answer = await chat(me, id, { intent: "steer-withdraw", steerId: toWithdraw.id });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain("Withdrawn");

    expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");
    expect(occurrencesInRequests(kept)).toEqual([1]);
    expect(occurrencesInRequests(withdrawn)).toEqual([]);
    // Once read, it cannot be withdrawn; the answer says when it was read.
    const keptRow = (await steersOf(id)).find((m) => m.content === kept)!;
    const late = await chat(me, id, { intent: "steer-withdraw", steerId: keptRow.id });
    expect(late.status).toBe(409);
    expect(late.text).toContain("Too late to withdraw: the agent read it at step 2.");
  });

  it("keeps a message the run stopped before reading: Stop still stops, and the builder can send it as a prompt", async () => {
    const me = await builder();
    const id = await createProject(me);
    promptScript([turn.run("sleep 30"), turn.reply("Footer added.")]);
    const run = await runWithSlowCommand(me, id);
    const footer = `add a footer ${randomUUID()}`;
    await chat(me, id, { intent: "prompt", prompt: footer });
    expect((await chat(me, id, { intent: "stop", runId: run.id })).status).toBe(200);
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("stopped");
    // Nothing restarted it, and the model never saw the message.
    expect(await runsOf(id)).toHaveLength(1);
    expect(occurrencesInRequests(footer)).toEqual([]);
    const page = await fetch(`${stack.app.url}/projects/${id}`, { headers: { Cookie: me.cookie } });
    expect(await page.text()).toContain("Not read: the run ended first.");

    const [message] = await steersOf(id);
    expect((await chat(me, id, { intent: "steer-send", steerId: message!.id })).status).toBe(200);
    const [, next] = await runsOf(id);
    expect(next!.prompt).toBe(footer);
    expect((await waitForRunToFinish(stack.database, next!)).type).toBe("complete");
    expect((await steersOf(id)).map((m) => m.state)).toEqual(["resent"]);
    // Sent once: a second click is refused.
    expect((await chat(me, id, { intent: "steer-send", steerId: message!.id })).status).toBe(409);
  });

  it("answers 404 for another builder's project or message and 400 for an oversized message", async () => {
    const me = await builder();
    const stranger = await builder();
    const id = await createProject(me);
    promptScript([turn.run("sleep 30"), turn.reply("Done.")]);
    const run = await runWithSlowCommand(me, id);
    expect((await chat(stranger, id, { intent: "prompt", prompt: "hijack" })).status).toBe(404);
    const oversized = await chat(me, id, { intent: "prompt", prompt: "x".repeat(20_001) });
    expect(oversized.status).toBe(400);
    expect(oversized.text).toContain("Prompts are limited to 20,000 characters.");
    await chat(me, id, { intent: "prompt", prompt: "mine" });
    const [mine] = await steersOf(id);
    const strangersProject = await createProject(stranger);
    expect((await chat(stranger, strangersProject, { intent: "steer-withdraw", steerId: mine!.id })).status).toBe(404);
    expect((await chat(me, id, { intent: "steer-withdraw", steerId: "not-a-uuid" })).status).toBe(404);
    expect((await steersOf(id)).map((m) => m.state)).toEqual(["queued"]);
    await chat(me, id, { intent: "stop", runId: run.id });
    expect((await waitForRunToFinish(stack.database, run)).type).toBe("stopped");
  });
});
