/**
 * Builders' own model keys end to end (decision 034), over HTTP against the
 * app in a child process (so every line it logs, BAML's included, is
 * captured), with the real engine, Postgres and BAML client. The "provider"
 * is the replay server behind an OpenAI-compatible key; the server itself
 * has no AGENT_MODEL, so a run can only use the builder's key.
 * MODEL_KEYS_ALLOW_PRIVATE=1 lets the key's base URL be 127.0.0.1.
 */
import { randomUUID } from "node:crypto";
import { and, eq } from "drizzle-orm";
import getPort from "get-port";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, messages, modelKeys, projects, runEvents, runs, type Run } from "../../db/schema";
import { signUp } from "../support/accounts";
import { startAppProcessStack, type AppProcessStack } from "../support/app-process-stack";
import { scripted, turn, type Turn } from "../support/model";
import { waitForRunToFinish } from "../support/wait";

let stack: AppProcessStack;

beforeAll(async () => {
  process.env.MODEL_KEYS_ALLOW_PRIVATE = "1";
  // No server model: only a builder's key can run a prompt.
  process.env.AGENT_MODEL = "";
  stack = await startAppProcessStack("dyno-model-keys-");
  console.log(`[model-keys] app ${stack.app.url}, replay ${stack.replay.url}`);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  delete process.env.MODEL_KEYS_ALLOW_PRIVATE;
});

const db = () => stack.database.db;

/** A fresh builder signed up through the app, with one project. */
async function builder() {
  const cookie = await signUp(stack.app.url, `keys-${randomUUID()}@example.test`, "correct horse battery staple");
  const created = await post(cookie, "/projects", { intent: "create", title: "Keys" });
  expect(created.status).toBe(302);
  const projectId = created.headers.get("location")!.split("/").pop()!;
  return { cookie, projectId };
}

function post(cookie: string, path: string, fields: Record<string, string>) {
  return fetch(`${stack.app.url}${path}`, {
    method: "POST",
    headers: { Cookie: cookie, Origin: stack.app.url },
    body: new URLSearchParams(fields),
    redirect: "manual",
  });
}

async function page(cookie: string, path: string): Promise<string> {
  const response = await fetch(`${stack.app.url}${path}`, { headers: { Cookie: cookie } });
  expect(response.status).toBe(200);
  return response.text();
}

/** A script on the replay server; its name is the model id the key lists. */
function script(turns: Turn[], extra = {}): string {
  return scripted(stack.replay, turns, extra).slice("openai-compatible/".length);
}

async function addKey(cookie: string, fields: Partial<Record<string, string>>) {
  const response = await post(cookie, "/settings", {
    intent: "key-add",
    provider: "openai-compatible",
    label: "Replay key",
    baseUrl: stack.replay.url,
    ...fields,
  } as Record<string, string>);
  return { status: response.status, html: await response.text() };
}

async function keysOf(cookie: string) {
  const html = await page(cookie, "/settings");
  return [...html.matchAll(/data-key-id="([0-9a-f-]{36})"/g)].map((m) => m[1]!);
}

async function latestRun(projectId: string): Promise<Run | undefined> {
  const rows = await db().select().from(runs).where(eq(runs.projectId, projectId));
  return rows.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())[0];
}

async function prompt(cookie: string, projectId: string, text = "build the page"): Promise<Run> {
  const before = await latestRun(projectId);
  const response = await post(cookie, `/projects/${projectId}`, { intent: "prompt", prompt: text });
  expect(response.status, await response.text()).toBe(200);
  const run = await latestRun(projectId);
  expect(run && run.id !== before?.id).toBe(true);
  return run!;
}

/** Everything Dyno wrote about the project that a key must never be in. */
async function projectTrail(projectId: string): Promise<string> {
  const [events, entries, transcript, runRows] = await Promise.all([
    db().select().from(runEvents).where(eq(runEvents.projectId, projectId)),
    db().select().from(agentEntries).where(eq(agentEntries.projectId, projectId)),
    db().select().from(messages).where(eq(messages.projectId, projectId)),
    db().select().from(runs).where(eq(runs.projectId, projectId)),
  ]);
  return JSON.stringify({ events, entries, transcript, runRows });
}

describe("a builder's own model key", () => {
  it("is stored sealed, runs the project's prompt with its Authorization header, and appears in no event, log, page or sandbox env", async () => {
    const { cookie, projectId } = await builder();
    const apiKey = `sk-dyno-${randomUUID().replaceAll("-", "")}`;
    const model = script([turn.run("env | sort"), turn.reply("Done: the environment is listed.")]);

    // No model anywhere yet: the page says so, and a prompt is refused.
    expect(await page(cookie, `/projects/${projectId}`)).toMatch(/No model is configured/);

    const added = await addKey(cookie, { apiKey, models: `${model}, other-model` });
    expect(added.status, added.html.slice(0, 500)).toBe(200);
    const [row] = await db().select().from(modelKeys);
    expect(row).toMatchObject({ provider: "openai-compatible", baseUrl: stack.replay.url, keyHint: apiKey.slice(-4) });
    expect(row!.models).toEqual([model, "other-model"]);
    expect(row!.sealedKey).toMatch(/^k1\./);
    // The row holds no copy of the key, whole or in parts.
    expect(JSON.stringify(row)).not.toContain(apiKey);
    expect(JSON.stringify(row)).not.toContain(apiKey.slice(3, 20));

    // The page shows its last four characters, never the key (nor does the form it was posted from).
    expect(added.html).not.toContain(apiKey);
    const settings = await page(cookie, "/settings");
    expect(settings).toContain(`…${apiKey.slice(-4)}`);
    expect(settings).not.toContain(apiKey);

    // Check connection: a real request with the key.
    const authorizationsBefore = stack.replay.authorizations.length;
    const checked = await post(cookie, "/settings", { intent: "key-check", keyId: row!.id });
    expect(checked.status).toBe(200);
    const checkedHtml = await checked.text();
    expect(checkedHtml).toMatch(/✓ (<!-- -->)?Connected/);
    expect(checkedHtml).not.toContain(apiKey);
    expect(stack.replay.authorizations.slice(authorizationsBefore)).toEqual([`Bearer ${apiKey}`]);
    const [afterCheck] = await db().select().from(modelKeys).where(eq(modelKeys.id, row!.id));
    expect(afterCheck).toMatchObject({
      lastCheckOk: true,
      lastCheckMessage: "Connected, but the server does not list other-model.",
    });

    // Picked for the project; the picker lists it.
    const projectPage = await page(cookie, `/projects/${projectId}`);
    expect(projectPage).toContain(`value="key:${row!.id}:${model}"`);
    const picked = await post(cookie, `/projects/${projectId}`, {
      intent: "model-set",
      model: `key:${row!.id}:${model}`,
    });
    expect(picked.status).toBe(200);
    const [project] = await db().select().from(projects).where(eq(projects.id, projectId));
    expect(project).toMatchObject({ model: `openai-compatible/${model}`, modelKeyId: row!.id, fallbackModel: null });

    const chatAuthorizations = stack.replay.authorizations.length;
    const run = await prompt(cookie, projectId);
    // The run names the key by id, never the key.
    expect(run).toMatchObject({ model: `openai-compatible/${model}`, modelKeyId: row!.id });
    const end = await waitForRunToFinish(stack.database, run, 90_000);
    expect(end.type, JSON.stringify(end.data)).toBe("complete");

    // Every request the run made (title and steps) carried the builder's key to the model server.
    const sent = stack.replay.authorizations.slice(chatAuthorizations);
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(new Set(sent)).toEqual(new Set([`Bearer ${apiKey}`]));
    expect(stack.replay.requestLog.filter((r) => r.model === model).length).toBeGreaterThanOrEqual(2);

    // The sandbox's environment, as the agent's `env` printed it: listed, and without the key.
    const trail = await projectTrail(projectId);
    expect(trail).toMatch(/PATH=/);
    expect(trail).not.toContain(apiKey);
    expect(trail).not.toContain(apiKey.slice(-12));
    // Nothing the app printed (its own logs, BAML's, the engine calls') has it either.
    expect(stack.app.output().length).toBeGreaterThan(0);
    expect(stack.app.output()).not.toContain(apiKey);
    expect(stack.app.output()).not.toContain(apiKey.slice(-12));
    expect(await page(cookie, `/projects/${projectId}`)).not.toContain(apiKey);
  }, 150_000);

  it("falls back to the fallback model when the primary answers 500s", async () => {
    const { cookie, projectId } = await builder();
    const apiKey = `sk-dyno-${randomUUID().replaceAll("-", "")}`;
    const down = script([
      { errors: Array(30).fill(500), reply: { tool: "list_files" } },
      { errors: Array(30).fill(500), reply: { tool: "reply_to_user", message: "from the primary" } },
    ]);
    const backup = script([
      turn.write("index.html", "<h1>from the fallback</h1>"),
      turn.reply("Built by the fallback."),
    ]);
    expect((await addKey(cookie, { apiKey, models: `${down} ${backup}` })).status).toBe(200);
    const [keyId] = await keysOf(cookie);

    // The same model as its own fallback is refused.
    const same = await post(cookie, `/projects/${projectId}`, {
      intent: "model-set",
      model: `key:${keyId}:${down}`,
      fallback: `key:${keyId}:${down}`,
    });
    expect(same.status).toBe(400);
    expect(await same.text()).toMatch(/fallback other than the model itself/);

    const picked = await post(cookie, `/projects/${projectId}`, {
      intent: "model-set",
      model: `key:${keyId}:${down}`,
      fallback: `key:${keyId}:${backup}`,
    });
    expect(picked.status).toBe(200);
    const run = await prompt(cookie, projectId);
    expect(run).toMatchObject({ fallbackModel: `openai-compatible/${backup}`, fallbackKeyId: keyId });
    const end = await waitForRunToFinish(stack.database, run, 90_000);
    expect(end.type, JSON.stringify(end.data)).toBe("complete");
    const answered = stack.replay.requestLog.filter((r) => r.model === down || r.model === backup);
    // Each step asked the primary first (a 500), then the fallback, which answered.
    expect(answered.filter((r) => r.model === down).length).toBeGreaterThanOrEqual(2);
    expect(answered.filter((r) => r.model === backup && typeof r.turn === "number").map((r) => r.turn)).toEqual([0, 1]);
    const [reply] = await db()
      .select()
      .from(messages)
      .where(and(eq(messages.runId, run.id), eq(messages.role, "assistant")));
    expect(reply?.content).toBe("Built by the fallback.");
    expect(stack.app.output()).not.toContain(apiKey);
  }, 150_000);

  it("check connection reports a refused key and an unreachable server with the provider's words, never the key", async () => {
    const { cookie } = await builder();
    const apiKey = `sk-revoked-${randomUUID().replaceAll("-", "")}`;
    stack.replay.refuseKey(apiKey);
    expect((await addKey(cookie, { apiKey, models: "m1", label: "Revoked" })).status).toBe(200);
    // A port nothing listens on (the replay server's own, plus one, is taken by nothing we start).
    const closed = new URL(stack.replay.url);
    closed.port = String(await getPort({ host: "127.0.0.1" }));
    expect(
      (await addKey(cookie, { apiKey: "sk-elsewhere-123456", models: "m2", label: "Gone", baseUrl: closed.href }))
        .status,
    ).toBe(200);
    const byLabel = Object.fromEntries((await db().select().from(modelKeys)).map((k) => [k.label, k.id] as const));

    const refused = await post(cookie, "/settings", { intent: "key-check", keyId: byLabel.Revoked! });
    const refusedHtml = await refused.text();
    expect(refusedHtml).toMatch(/The provider answered 401: Incorrect API key provided\./);
    expect(refusedHtml).not.toContain(apiKey);
    const [stored] = await db().select().from(modelKeys).where(eq(modelKeys.id, byLabel.Revoked!));
    expect(stored).toMatchObject({ lastCheckOk: false });
    expect(stored!.lastCheckMessage).toMatch(/401/);

    const gone = await (await post(cookie, "/settings", { intent: "key-check", keyId: byLabel.Gone! })).text();
    expect(gone).toContain(`Could not connect to ${closed.host} (ECONNREFUSED).`);
  }, 60_000);

  it("refuses bad input with a sentence and keeps another builder's keys out of reach", async () => {
    const alice = await builder();
    const bob = await builder();
    const model = script([turn.reply("hi")]);
    expect((await addKey(alice.cookie, { apiKey: "sk-alice-0123456789", models: model })).status).toBe(200);
    const [aliceKey] = await keysOf(alice.cookie);
    expect(aliceKey).toBeDefined();

    const refusals: [Record<string, string>, RegExp][] = [
      [{ provider: "gemini" }, /Pick a provider/],
      [{ provider: "openai", apiKey: "" }, /Paste your OpenAI API key/],
      [{ apiKey: "x".repeat(1001), models: "m" }, /longer than 1000 characters/],
      [{ apiKey: "sk with spaces", models: "m" }, /without spaces/],
      [{ apiKey: "sk-ok-123456789", models: "" }, /at least one model/],
      [{ apiKey: "sk-ok-123456789", models: "m", baseUrl: "file:///etc/passwd" }, /starts with https:\/\//],
      [{ apiKey: "sk-ok-123456789", models: "m", baseUrl: "http://user:pw@127.0.0.1/v1" }, /credentials/],
      [{ provider: "anthropic", apiKey: "sk-ok-123456789", models: "m" }, /Only an OpenAI-compatible server/],
      [{ apiKey: "sk-ok-123456789", models: "m", label: "\u0000".repeat(61) }, /at most 60 characters/],
    ];
    for (const [fields, message] of refusals) {
      const { status, html } = await addKey(bob.cookie, fields);
      expect(status, JSON.stringify(fields)).toBe(400);
      expect(html).toMatch(message);
    }
    expect(await keysOf(bob.cookie)).toEqual([]);

    // Bob cannot see, check, remove or pick Alice's key: each answers as if it did not exist.
    expect(await page(bob.cookie, "/settings")).not.toContain(aliceKey!);
    for (const intent of ["key-check", "key-remove"]) {
      const response = await post(bob.cookie, "/settings", { intent, keyId: aliceKey! });
      expect(response.status).toBe(404);
    }
    const pick = await post(bob.cookie, `/projects/${bob.projectId}`, {
      intent: "model-set",
      model: `key:${aliceKey}:${model}`,
    });
    expect(pick.status).toBe(404);
    const [bobProject] = await db().select().from(projects).where(eq(projects.id, bob.projectId));
    expect(bobProject!.modelKeyId).toBeNull();
    // Nor a model the key does not list, nor a server model the server does not offer, nor garbage.
    for (const value of [`key:${aliceKey}:not-listed`, "server:openai/gpt-4.1", "key:../../etc:x", "x".repeat(5000)]) {
      const response = await post(alice.cookie, `/projects/${alice.projectId}`, { intent: "model-set", model: value });
      expect(response.status, value.slice(0, 40)).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
    }
    expect(await keysOf(alice.cookie)).toEqual([aliceKey]);
    // A bogus key id to check or remove is a 404 too, not a 500.
    expect(
      (await post(alice.cookie, "/settings", { intent: "key-remove", keyId: "'; drop table users; --" })).status,
    ).toBe(404);
  }, 60_000);

  it("removing a key stops its project's prompts with a reason, and fails a run using it at its next step", async () => {
    const { cookie, projectId } = await builder();
    const model = script([
      { delayMs: 3_000, reply: { tool: "todo_write", todos: [{ id: "1", content: "Wait", status: "in_progress" }] } },
      turn.reply("should not get here"),
    ]);
    expect((await addKey(cookie, { apiKey: "sk-remove-me-123456", models: model })).status).toBe(200);
    const [keyId] = await keysOf(cookie);
    expect(
      (await post(cookie, `/projects/${projectId}`, { intent: "model-set", model: `key:${keyId}:${model}` })).status,
    ).toBe(200);
    const run = await prompt(cookie, projectId);
    const removed = await post(cookie, "/settings", { intent: "key-remove", keyId: keyId! });
    expect(removed.status).toBe(200);
    expect(await db().select().from(modelKeys).where(eq(modelKeys.id, keyId!))).toEqual([]);

    const end = await waitForRunToFinish(stack.database, run, 90_000);
    expect(end.type).toBe("failed");
    expect(String((end.data as { error?: unknown }).error)).toMatch(/API key for openai-compatible\/.* was removed/);

    // The project keeps its choice and says why it cannot run; a prompt is refused and nothing is written.
    expect(await page(cookie, `/projects/${projectId}`)).toMatch(/was removed: pick another model/);
    const runsBefore = (await db().select().from(runs).where(eq(runs.projectId, projectId))).length;
    const refused = await post(cookie, `/projects/${projectId}`, { intent: "prompt", prompt: "again" });
    expect(refused.status).toBe(400);
    expect((await db().select().from(runs).where(eq(runs.projectId, projectId))).length).toBe(runsBefore);
  }, 150_000);
});
