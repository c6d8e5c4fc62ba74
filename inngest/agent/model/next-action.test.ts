import path from "node:path";
import { BamlClientHttpError } from "@boundaryml/baml";
import { vi, afterAll, beforeAll, describe, expect, it } from "vitest";
import { b } from "../../../baml_client";
import { loadReplayScript, BUNDLED_SCRIPTS_DIR, DEMO_SCRIPT, type ReplayScript } from "../../../model-replay/script";
import { startReplayServer, type ReplayServer } from "../../../model-replay/server";
import { bamlClientOptions, createClientRegistry } from "./client";
import type { ModelConfig } from "./config";
import {
  cleanTitle,
  generateTitle,
  isAbortError,
  isPermanentModelError,
  isTimeoutError,
  providerMessage,
  jsonObjectIn,
  nextAction,
  type AgentAction,
  type AgentMode,
  type ConversationTurn,
  type NextActionResult,
  type ProjectContext,
} from "./next-action";

// Before BAML loads: keep prompts out of the test output, and keep BAML's
// HTTP client (which obeys HTTP_PROXY) off any proxy for loopback.
vi.hoisted(() => {
  process.env.BAML_LOG = "warn";
  process.env.NO_PROXY = "127.0.0.1,localhost";
});

const ACTIONS_OF_EVERY_KIND: AgentAction[] = [
  { tool: "todo_write", todos: [{ id: "1", content: "Write the page", status: "in_progress" }] },
  { tool: "write_file", path: "index.html", content: '<!doctype html>\n<p class="x">{"not": "json"} \\ </p>\n' },
  { tool: "read_file", path: "index.html" },
  { tool: "list_files", path: "src" },
  { tool: "run_command", command: "ls -la && node --check app.js", timeout_seconds: 30 },
  { tool: "start_app", command: "npm run dev -- --host 127.0.0.1" },
  { tool: "app_logs", lines: 80 },
  { tool: "reply_to_user", message: "**Done.** Open the preview." },
];

const SCRIPTS: ReplayScript[] = [
  { name: "every-kind", title: "Todo Page", turns: ACTIONS_OF_EVERY_KIND.map((action) => ({ reply: { ...action } })) },
  { name: "list-root", turns: [{ reply: { tool: "list_files" } }] },
  {
    name: "fenced",
    turns: [{ raw: 'Sure! Here is my action:\n```json\n{ "tool": "read_file", "path": "app.js" }\n```' }],
  },
  { name: "malformed", turns: [{ raw: "this is not json" }] },
  { name: "missing-field", turns: [{ raw: '{"tool": "write_file", "path": "index.html"}' }] },
  { name: "unknown-tool", turns: [{ raw: '{"tool": "delete_everything", "path": "/"}' }] },
  { name: "unknown-tool-fenced", turns: [{ raw: '```json\n{"tool": "search_web", "query": "todo app"}\n```' }] },
  { name: "write-in-ask", turns: [{ reply: { tool: "write_file", path: "index.html", content: "<p>hi</p>" } }] },
  { name: "read-in-ask", turns: [{ reply: { tool: "read_file", path: "index.html" } }] },
  { name: "flaky", turns: [{ errors: [429, 500], reply: { tool: "read_file", path: "index.html" } }] },
  { name: "down", turns: [{ errors: [500, 500, 500, 500, 500, 500, 500, 500], reply: { tool: "list_files" } }] },
  { name: "bad-key", turns: [{ errors: [401, 401, 401, 401, 401, 401, 401, 401], reply: { tool: "list_files" } }] },
  { name: "forbidden", turns: [{ errors: [403, 403, 403, 403], reply: { tool: "list_files" } }] },
  { name: "slow", turns: [{ delayMs: 10_000, reply: { tool: "list_files" } }] },
];

let server: ReplayServer;
beforeAll(async () => {
  server = await startReplayServer({ scripts: SCRIPTS });
  server.addScript(await loadReplayScript(path.join(BUNDLED_SCRIPTS_DIR, `${DEMO_SCRIPT}.json`)));
});
afterAll(() => server.close());

function replay(script: string, options: { requestTimeoutMs?: number } = {}) {
  const config: ModelConfig = { provider: "replay", model: script, label: `replay/${script}` };
  return { config, registry: createClientRegistry(config, { replayBaseUrl: server.url, ...options }) };
}

function context(mode: AgentMode = "build"): ProjectContext {
  return { mode, iteration: 1, max_iterations: 20, files: ["index.html"], todos: [] };
}

const PROMPT: ConversationTurn = { role: "user", content: "Build a todo page" };

async function ask(
  script: string,
  mode: AgentMode = "build",
  conversation: ConversationTurn[] = [PROMPT],
  signal?: AbortSignal,
) {
  return nextAction({ ...replay(script), mode, context: context(mode), conversation, ...(signal ? { signal } : {}) });
}

/** Plays a whole script the way the agent loop does: each action and its result join the conversation. */
async function playThrough(script: string, turns: number): Promise<NextActionResult[]> {
  const conversation: ConversationTurn[] = [PROMPT];
  const results: NextActionResult[] = [];
  for (let i = 0; i < turns; i++) {
    const result = await ask(script, "build", [...conversation]);
    results.push(result);
    conversation.push({ role: "assistant", content: result.raw }, { role: "user", content: "Result: ok" });
  }
  return results;
}

function expectUsage(result: { usage: { inputTokens: number; outputTokens: number } }) {
  expect(result.usage.inputTokens).toBeGreaterThan(0);
  expect(result.usage.outputTokens).toBeGreaterThan(0);
}

describe("nextAction against the replay server", () => {
  it("parses an action of every kind, content intact, with usage", async () => {
    const results = await playThrough("every-kind", ACTIONS_OF_EVERY_KIND.length);
    results.forEach((result, i) => {
      expect(result).toMatchObject({ ok: true, action: ACTIONS_OF_EVERY_KIND[i] });
      expect(result.raw).toBe(JSON.stringify(ACTIONS_OF_EVERY_KIND[i]));
      expectUsage(result);
    });
  });

  it("leaves an omitted optional field empty", async () => {
    const result = await ask("list-root");
    expect(result.ok && result.action.tool === "list_files" && result.action.path == null).toBe(true);
  });

  it("reads an action wrapped in prose and a ``` fence", async () => {
    expect(await ask("fenced")).toMatchObject({ ok: true, action: { tool: "read_file", path: "app.js" } });
  });

  it("turns a malformed reply into ok:false unparseable, with the raw text and usage", async () => {
    const result = await ask("malformed");
    expect(result).toMatchObject({ ok: false, problem: "unparseable", raw: "this is not json" });
    if (result.ok) throw new Error("unreachable");
    expect(result.error).toContain(
      'Reply with exactly one JSON object, with a "tool" field naming one of write_file, read_file',
    );
    expectUsage(result);
  });

  it("tells the model which fields a known tool's reply lacks", async () => {
    const result = await ask("missing-field");
    expect(result).toMatchObject({ ok: false, problem: "unparseable" });
    if (result.ok) throw new Error("unreachable");
    expect(result.error).toContain('names the tool "write_file" but its fields do not match');
  });

  it("names an unknown tool and lists the available ones", async () => {
    for (const [script, tool] of [
      ["unknown-tool", "delete_everything"],
      ["unknown-tool-fenced", "search_web"],
    ] as const) {
      const result = await ask(script);
      expect(result).toMatchObject({ ok: false, problem: "unknown_tool" });
      if (result.ok) throw new Error("unreachable");
      expect(result.error).toBe(
        `There is no tool named "${tool}". The available tools are write_file, read_file, list_files, run_command, todo_write, start_app, app_logs, reply_to_user. ` +
          "Reply with exactly one JSON object for one of them.",
      );
      expectUsage(result);
    }
  });

  it("refuses write_file in ask mode, saying ask mode is read-only", async () => {
    const result = await ask("write-in-ask", "ask");
    expect(result).toMatchObject({ ok: false, problem: "unknown_tool" });
    if (result.ok) throw new Error("unreachable");
    expect(result.error).toContain('The tool "write_file" is not allowed in ask mode: ask mode is read-only.');
    expect(result.error).toContain("read_file, list_files, app_logs, reply_to_user");
  });

  it("accepts read-only tools in ask mode", async () => {
    expect(await ask("read-in-ask", "ask")).toMatchObject({
      ok: true,
      action: { tool: "read_file", path: "index.html" },
    });
  });

  it("rides out a 429 and a 500 by retrying", async () => {
    const before = server.requests;
    expect(await ask("flaky")).toMatchObject({ ok: true, action: { tool: "read_file", path: "index.html" } });
    expect(server.requests - before).toBe(3);
  });

  it("throws the HTTP error once the retries are used up", async () => {
    const before = server.requests;
    const error = await ask("down").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BamlClientHttpError);
    expect((error as BamlClientHttpError).status_code).toBe(500);
    expect(isPermanentModelError(error)).toBe(false);
    expect(server.requests - before).toBe(4); // the call and 3 retries
  });

  it.each([
    ["a refused key (401)", "bad-key", 401, /HTTP 401: Replay script "bad-key" turn 0: injected HTTP 401/],
    ["no access (403)", "forbidden", 403, /HTTP 403: Replay script "forbidden" turn 0: injected HTTP 403/],
    ["an unknown model (404)", "no-such-model", 404, /HTTP 404: No replay script named "no-such-model"/],
  ])("asks once and fails on %s, with the provider's message", async (_, script, status, message) => {
    const before = server.requests;
    const error = await ask(script).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BamlClientHttpError);
    expect((error as BamlClientHttpError).status_code).toBe(status);
    expect(isPermanentModelError(error)).toBe(true);
    expect(providerMessage(error)).toMatch(message);
    expect(server.requests - before).toBe(1);
  });

  // The 5 s limit is half the scripted delay: only an abort that cuts the call short passes.
  it("stops a call in flight when its signal aborts", { timeout: 5_000 }, async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const error = await ask("slow", "build", [PROMPT], controller.signal).catch((e: unknown) => e);
    expect(isAbortError(error)).toBe(true);
  });

  it("does not call the model when the signal is already aborted", async () => {
    const before = server.requests;
    const error = await ask("list-root", "build", [PROMPT], AbortSignal.abort()).catch((e: unknown) => e);
    expect(isAbortError(error)).toBe(true);
    expect(server.requests).toBe(before);
  });

  it("throws a timeout error when every attempt outlasts requestTimeoutMs", async () => {
    const before = server.requests;
    const { config, registry } = replay("slow", { requestTimeoutMs: 200 });
    const error = await nextAction({
      config,
      registry,
      mode: "build",
      context: context(),
      conversation: [PROMPT],
    }).catch((e: unknown) => e);
    expect(isTimeoutError(error)).toBe(true);
    expect(isAbortError(error)).toBe(false);
    expect(server.requests - before).toBe(4);
  });

  it("plays the bundled demo from plan to reply", async () => {
    const demo = await loadReplayScript(path.join(BUNDLED_SCRIPTS_DIR, `${DEMO_SCRIPT}.json`));
    const results = await playThrough(DEMO_SCRIPT, demo.turns.length + 1);
    results
      .slice(0, -1)
      .forEach((result, i) => expect(result).toMatchObject({ ok: true, action: demo.turns[i]!.reply }));
    // Past the script's end, the replay ends the run.
    expect(results.at(-1)).toMatchObject({ ok: true, action: { tool: "reply_to_user" } });
  });
});

describe("nextAction streams", () => {
  const content = Array.from({ length: 40 }, (_, i) => `<p>line ${i} "quoted" \\ {braces}</p>`).join("\n");

  it("hands over partials in order, each a prefix of the final content, and the same action as a plain call", async () => {
    server.addScript({
      name: "stream-write",
      turns: [{ reply: { tool: "write_file", path: "index.html", content }, chunkChars: 40, chunkDelayMs: 25 }],
    });
    const partials: unknown[] = [];
    const result = await nextAction({
      ...replay("stream-write"),
      mode: "build",
      context: context(),
      conversation: [PROMPT],
      onPartial: (partial) => partials.push(structuredClone(partial)),
    });
    expect(result).toMatchObject({ ok: true, action: { tool: "write_file", path: "index.html", content } });
    expectUsage(result);
    const texts = partials.map((p) => (p as { content?: string | null }).content ?? "");
    expect(new Set(texts).size).toBeGreaterThan(3);
    for (let i = 1; i < texts.length; i++) expect(texts[i]!.length).toBeGreaterThanOrEqual(texts[i - 1]!.length);
    // A piece may end inside an escape (`\\"`): BAML's partial then ends with the stray backslash.
    for (const text of texts) expect(content.startsWith(text.slice(0, -1))).toBe(true);
    // The durable record is what a plain (unstreamed) call parses from the same reply.
    const { registry } = replay("stream-write");
    const plain = await b.CodingAgent(context(), [PROMPT], bamlClientOptions(registry));
    expect(result.ok && result.action).toEqual(plain);
  });

  it("parses every kind of action exactly as a plain call does", async () => {
    server.addScript({
      name: "every-kind-streamed",
      turns: ACTIONS_OF_EVERY_KIND.map((action) => ({ reply: { ...action }, chunkChars: 7 })),
    });
    const conversation: ConversationTurn[] = [PROMPT];
    for (const expected of ACTIONS_OF_EVERY_KIND) {
      const streamed = await nextAction({
        ...replay("every-kind-streamed"),
        mode: "build",
        context: context(),
        conversation: [...conversation],
        onPartial: () => {},
      });
      const plain = await b.CodingAgent(
        context(),
        [...conversation],
        bamlClientOptions(replay("every-kind-streamed").registry),
      );
      expect(streamed.ok && streamed.action).toEqual(plain);
      expect(plain).toMatchObject(expected);
      conversation.push({ role: "assistant", content: streamed.raw }, { role: "user", content: "Result: ok" });
    }
  });

  it("still turns unparseable output into a rejected reply, partials or not", async () => {
    server.addScript({
      name: "stream-malformed",
      turns: [{ raw: 'I will now write {"tool": "write_file", "path": "a.html"', chunkChars: 5, chunkDelayMs: 5 }],
    });
    const partials: unknown[] = [];
    const result = await nextAction({
      ...replay("stream-malformed"),
      mode: "build",
      context: context(),
      conversation: [PROMPT],
      onPartial: (partial) => partials.push(partial),
    });
    expect(result).toMatchObject({ ok: false, problem: "unparseable" });
    if (result.ok) throw new Error("unreachable");
    expect(result.raw).toBe('I will now write {"tool": "write_file", "path": "a.html"');
    expect(result.error).toContain("could not be read as an action");
  });

  it(
    "stops at once when its signal aborts mid-stream: the server sees the connection closed",
    { timeout: 10_000 },
    async () => {
      server.addScript({
        name: "stream-long",
        turns: [
          {
            reply: { tool: "write_file", path: "big.html", content: "z".repeat(4_000) },
            chunkChars: 20,
            chunkDelayMs: 20,
          },
        ],
      });
      const before = server.requestLog.length;
      const controller = new AbortController();
      let partials = 0;
      const started = performance.now();
      const error = await nextAction({
        ...replay("stream-long"),
        mode: "build",
        context: context(),
        conversation: [PROMPT],
        signal: controller.signal,
        onPartial: () => {
          if (++partials === 2) controller.abort();
        },
      }).catch((e: unknown) => e);
      expect(isAbortError(error)).toBe(true);
      // The whole reply takes 4 s to send; the abort ends the call long before.
      expect(performance.now() - started).toBeLessThan(3_000);
      await expect.poll(() => server.requestLog.slice(before)[0]?.outcome, { timeout: 2_000 }).toBe("aborted");
      expect(server.requestLog.slice(before)).toHaveLength(1);
    },
  );
});

describe("generateTitle", () => {
  it("answers the script's title, with usage", async () => {
    const result = await generateTitle({ registry: replay("every-kind").registry, prompt: "Build a todo page" });
    expect(result.title).toBe("Todo Page");
    expectUsage(result);
  });

  it("falls back when the model gives no title", async () => {
    server.addScript({ name: "no-title", title: '  "" ', turns: [] });
    expect((await generateTitle({ registry: replay("no-title").registry, prompt: "x" })).title).toBe(
      "Untitled project",
    );
  });
});

describe("helpers", () => {
  it("finds the JSON object in a reply", () => {
    expect(jsonObjectIn('{"tool":"x"}')).toEqual({ tool: "x" });
    expect(jsonObjectIn('```json\n{"tool":"x"}\n```')).toEqual({ tool: "x" });
    expect(jsonObjectIn('I will do this: {"tool":"x"} now')).toEqual({ tool: "x" });
    expect(jsonObjectIn("no json here")).toBeUndefined();
    expect(jsonObjectIn("[1, 2]")).toBeUndefined();
  });

  it("tidies a title", () => {
    expect(cleanTitle('"Todo Page."')).toBe("Todo Page");
    expect(cleanTitle("Title: **Recipe Box**\nA place for recipes")).toBe("Recipe Box");
    expect(cleanTitle("one two three four five six seven eight")).toBe("one two three four five six");
  });

  it("knows an abort from other errors", () => {
    expect(isAbortError(new DOMException("stopped", "AbortError"))).toBe(true);
    expect(isAbortError(new Error("boom"))).toBe(false);
  });
});
