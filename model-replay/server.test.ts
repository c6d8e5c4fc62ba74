import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { compactedTurnsMarker } from "../inngest/agent/conversation";
import { SUMMARY_REQUEST_PHRASE, summaryDigest, TITLE_REQUEST_PHRASE } from "./answer";
import { parseReplayScript, type ReplayScript } from "./script";
import { startReplayServer, type ReplayServer } from "./server";

const SCRIPTS: ReplayScript[] = [
  {
    name: "basic",
    title: "Todo page",
    turns: [
      { reply: { tool: "list_files" } },
      { raw: "this is not json" },
      { reply: { tool: "reply_to_user", message: "Done." } },
    ],
  },
  { name: "flaky", turns: [{ errors: [429, 500], reply: { tool: "read_file", path: "index.html" } }] },
  { name: "slow", turns: [{ delayMs: 30_000, reply: { tool: "list_files" } }] },
  { name: "untitled", turns: [] },
];

let server: ReplayServer;
beforeAll(async () => {
  server = await startReplayServer({ scripts: SCRIPTS });
});
afterAll(() => server.close());

type Message = { role: string; content: unknown };

/** A conversation that has had `assistantTurns` replies so far. */
function conversation(assistantTurns: number): Message[] {
  const messages: Message[] = [
    { role: "system", content: "You are a coding agent." },
    { role: "user", content: "Build a todo page" },
  ];
  for (let i = 0; i < assistantTurns; i++) {
    messages.push(
      { role: "assistant", content: `{"tool":"list_files"}` },
      { role: "user", content: "Result of list_files: (empty)" },
    );
  }
  return messages;
}

async function chat(
  model: string,
  messages: Message[],
  options: { extra?: object; signal?: AbortSignal; url?: string } = {},
) {
  return fetch(`${options.url ?? server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, ...options.extra }),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

async function replyTextAt(model: string, messages: Message[], url?: string): Promise<string> {
  const response = await chat(model, messages, url ? { url } : {});
  expect(response.status).toBe(200);
  const body = (await response.json()) as { choices: { message: { role: string; content: string } }[] };
  expect(body.choices[0]?.message.role).toBe("assistant");
  return body.choices[0]!.message.content;
}

const replyText = (model: string, messages: Message[]) => replyTextAt(model, messages);

describe("replay server", () => {
  it("serves its base URL ending in /v1 on loopback", () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  });

  it("picks the turn from the number of assistant messages, the same every time", async () => {
    expect(JSON.parse(await replyText("basic", conversation(0)))).toEqual({ tool: "list_files" });
    expect(await replyText("basic", conversation(1))).toBe("this is not json");
    // A retried step sends the same conversation and gets the same reply.
    expect(await replyText("basic", conversation(1))).toBe("this is not json");
    expect(JSON.parse(await replyText("basic", conversation(0)))).toEqual({ tool: "list_files" });
  });

  it("reads message content given as an array of text parts", async () => {
    const messages = conversation(2).map((m) => ({ ...m, content: [{ type: "text", text: String(m.content) }] }));
    expect(JSON.parse(await replyText("basic", messages))).toEqual({ tool: "reply_to_user", message: "Done." });
  });

  it("ends a finished script with a reply_to_user, so a run never loops", async () => {
    const reply = JSON.parse(await replyText("basic", conversation(3))) as { tool: string; message: string };
    expect(reply.tool).toBe("reply_to_user");
    expect(reply.message).toContain('replay script "basic" has ended');
  });

  it("starts a script with a prompt over at every user turn carrying it, so each run replays from the start", async () => {
    const own = await startReplayServer({
      scripts: [
        ...SCRIPTS,
        {
          name: "per-run",
          prompt: "Build a todo page",
          turns: [{ reply: { tool: "list_files" } }, { reply: { tool: "reply_to_user", message: "Built." } }],
        },
      ],
    });
    onTestFinished(() => own.close());
    const replyText = (model: string, messages: Message[]) => replyTextAt(model, messages, own.url);
    // The first run: the prompt, then its two turns.
    expect(JSON.parse(await replyText("per-run", conversation(0)))).toEqual({ tool: "list_files" });
    expect(JSON.parse(await replyText("per-run", conversation(1)))).toEqual({
      tool: "reply_to_user",
      message: "Built.",
    });
    // A second run of the same project: the whole first run, then the prompt again (after a stop notice).
    const secondRun: Message[] = [
      ...conversation(1),
      { role: "assistant", content: `{"tool":"reply_to_user","message":"Built."}` },
      { role: "user", content: "[The builder stopped that run.]\n\nBuild a todo page\n\nAnswer with JSON." },
    ];
    expect(JSON.parse(await replyText("per-run", secondRun))).toEqual({ tool: "list_files" });
    const secondRunLater = [
      ...secondRun,
      { role: "assistant", content: `{"tool":"list_files"}` },
      { role: "user", content: "Result: (empty)" },
    ];
    expect(JSON.parse(await replyText("per-run", secondRunLater))).toEqual({
      tool: "reply_to_user",
      message: "Built.",
    });
    // Without a prompt, every run of a project is one script: the same second run is past its end.
    expect(JSON.parse(await replyText("basic", secondRunLater)).message).toContain("has ended");
  });

  it("answers title requests with the script's title, without using a turn", async () => {
    const titleRequest = [
      { role: "system", content: `Write ${TITLE_REQUEST_PHRASE}: 2 to 6 words.` },
      { role: "user", content: "Build a todo page" },
    ];
    expect(await replyText("basic", titleRequest)).toBe("Todo page");
    expect(await replyText("untitled", titleRequest)).toBe("Untitled project");
    expect(JSON.parse(await replyText("basic", conversation(0)))).toEqual({ tool: "list_files" });
  });

  it("counts the turns a compaction summary stands for, as the agent renders it", async () => {
    const compacted: Message[] = [
      { role: "system", content: "You are a coding agent." },
      { role: "user", content: `${compactedTurnsMarker(2)}\n\nListed the files twice.` },
    ];
    expect(JSON.parse(await replyText("basic", compacted)).message).toBe("Done.");
    const oneMore = [...conversation(0).slice(0, 1), { role: "user", content: `${compactedTurnsMarker(1)}\n\n…` }];
    expect(await replyText("basic", oneMore)).toBe("this is not json");
  });

  it("answers summary requests with the script's summary or a digest of the request, without using a turn", async () => {
    const request = (text: string) => [
      { role: "system", content: `${SUMMARY_REQUEST_PHRASE}. You are helping Dyno.` },
      { role: "user", content: text },
    ];
    const own = await startReplayServer({
      scripts: [{ name: "summarized", summary: "## Files\n- `recipes.js`: the recipe list", turns: [] }],
    });
    onTestFinished(() => own.close());
    expect(await replyTextAt("summarized", request("anything"), own.url)).toBe(
      "## Files\n- `recipes.js`: the recipe list",
    );
    const turns =
      "# The summary so far\nFiles written: a.html\nBuilder asked: Build a recipe box\n" +
      "## The builder, a tool result or a note from Dyno\nAdd tags to recipes\n" +
      '## The agent\'s action\n{"tool":"write_file","path":"tags.js","content":"x"}\n' +
      "## The builder, a tool result or a note from Dyno\nResult of write_file:\nWrote tags.js";
    const digest = await replyText("basic", request(turns));
    expect(digest).toBe(summaryDigest(request(turns)));
    expect(digest).toBe(
      "Files written: a.html, tags.js\nBuilder asked: Build a recipe box\nBuilder asked: Add tags to recipes",
    );
    expect(JSON.parse(await replyText("basic", conversation(0)))).toEqual({ tool: "list_files" });
  });

  it("logs every request's kind and prompt size", async () => {
    const before = server.requestLog.length;
    await replyText("basic", conversation(1));
    const [logged] = server.requestLog.slice(before);
    expect(logged).toMatchObject({ model: "basic", turn: 1, lastMessage: "Result of list_files: (empty)" });
    const chars = conversation(1).reduce((sum, m) => sum + String(m.content).length, 0);
    expect(logged!.promptTokens).toBe(Math.ceil(chars / 4));
  });

  it("answers the scripted HTTP errors on the first attempts of a turn, then the reply", async () => {
    const first = await chat("flaky", conversation(0));
    expect(first.status).toBe(429);
    const firstBody = (await first.json()) as { error: { message: string; type: string } };
    expect(firstBody.error.type).toBe("rate_limit_error");
    expect(firstBody.error.message).toContain("injected HTTP 429");

    const second = await chat("flaky", conversation(0));
    expect(second.status).toBe(500);
    expect(((await second.json()) as { error: { type: string } }).error.type).toBe("server_error");

    expect(JSON.parse(await replyText("flaky", conversation(0)))).toEqual({ tool: "read_file", path: "index.html" });
    expect(JSON.parse(await replyText("flaky", conversation(0)))).toEqual({ tool: "read_file", path: "index.html" });
  });

  it("reports usage of about a token per 4 characters", async () => {
    const messages = conversation(0);
    const response = await chat("basic", messages);
    const body = (await response.json()) as {
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    };
    const promptChars = messages.reduce((sum, m) => sum + String(m.content).length, 0);
    expect(body.usage.prompt_tokens).toBe(Math.ceil(promptChars / 4));
    expect(body.usage.completion_tokens).toBe(Math.ceil('{"tool":"list_files"}'.length / 4));
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it("streams the reply as SSE chunks when asked to", async () => {
    const response = await chat("basic", conversation(1), {
      extra: { stream: true, stream_options: { include_usage: true } },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const events = (await response.text())
      .split("\n\n")
      .filter(Boolean)
      .map((event) => event.replace(/^data: /, ""));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map(
      (event) =>
        JSON.parse(event) as {
          choices: { delta: { content?: string }; finish_reason: string | null }[];
          usage?: { completion_tokens: number };
        },
    );
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("this is not json");
    expect(chunks.some((c) => c.choices[0]?.finish_reason === "stop")).toBe(true);
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(4);
  });

  it("streams in the turn's pieces and pace, and logs a streamed answer as completed", async () => {
    const content = "x".repeat(25);
    const server = await startReplayServer({
      scripts: [{ name: "chunked", turns: [{ raw: content, chunkChars: 10, chunkDelayMs: 30 }] }],
    });
    onTestFinished(() => server.close());
    const before = server.requestLog.length;
    const arrivals: { at: number; text: string }[] = [];
    const response = await chat("chunked", conversation(0), { url: server.url, extra: { stream: true } });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end).replace(/^data: /, "");
        buffer = buffer.slice(end + 2);
        if (event === "[DONE]") continue;
        const text = (JSON.parse(event) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content;
        if (text) arrivals.push({ at: performance.now(), text });
      }
    }
    expect(arrivals.map((a) => a.text)).toEqual(["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
    // Paced: the pieces came apart, not in one write (the wait is 30 ms; timers may fire a little early).
    expect(arrivals[2]!.at - arrivals[0]!.at).toBeGreaterThanOrEqual(50);
    expect(server.requestLog.slice(before)).toMatchObject([
      { model: "chunked", stream: true, outcome: "completed", chunksSent: 3 },
    ]);
  });

  it("logs a stream the client dropped part-way as aborted, and writes no more of it", async () => {
    const server = await startReplayServer({
      scripts: [{ name: "dropped", turns: [{ raw: "y".repeat(100), chunkChars: 10, chunkDelayMs: 50 }] }],
    });
    onTestFinished(() => server.close());
    const before = server.requestLog.length;
    const controller = new AbortController();
    const response = await chat("dropped", conversation(0), {
      url: server.url,
      extra: { stream: true },
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.read().catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const [logged] = server.requestLog.slice(before);
    expect(logged).toMatchObject({ model: "dropped", stream: true, outcome: "aborted" });
    expect(logged!.chunksSent).toBeLessThan(10);
  });

  it("takes chunking defaults from the server's options and reports each piece", async () => {
    const pieces: { index: number; sentChars: number }[] = [];
    const other = await startReplayServer({
      scripts: [{ name: "plain", turns: [{ raw: "abcdefgh" }] }],
      chunkChars: 3,
      onChunk: ({ index, sentChars }) => pieces.push({ index, sentChars }),
    });
    onTestFinished(() => other.close());
    const response = await chat("plain", conversation(0), { url: other.url, extra: { stream: true } });
    await response.text();
    expect(pieces).toEqual([
      { index: 0, sentChars: 3 },
      { index: 1, sentChars: 6 },
      { index: 2, sentChars: 8 },
    ]);
  });

  it("refuses chunking options that make no sense", () => {
    expect(() => parseReplayScript({ name: "zero", turns: [{ raw: "a", chunkChars: 0 }] })).toThrow(/chunkChars/);
    expect(() => parseReplayScript({ name: "neg", turns: [{ raw: "a", chunkDelayMs: -1 }] })).toThrow(/chunkDelayMs/);
  });

  it("names the known scripts when the model is unknown", async () => {
    const response = await chat("nope", conversation(0));
    expect(response.status).toBe(404);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toBe('No replay script named "nope". Known scripts: basic, flaky, slow, untitled.');
  });

  it("rejects a body that is not JSON, and unknown routes", async () => {
    const bad = await fetch(`${server.url}/chat/completions`, { method: "POST", body: "{" });
    expect(bad.status).toBe(400);
    const unknown = await fetch(`${server.url}/embeddings`, { method: "POST", body: "{}" });
    expect(unknown.status).toBe(404);
  });

  it("lists its scripts as models", async () => {
    const response = await fetch(`${server.url}/models`);
    const body = (await response.json()) as { object: string; data: { id: string }[] };
    expect(body.object).toBe("list");
    expect(body.data.map((m) => m.id)).toEqual(["basic", "flaky", "slow", "untitled"]);
  });

  it("adds and replaces scripts at run time", async () => {
    server.addScript({ name: "added", turns: [{ raw: "one" }] });
    expect(await replyText("added", conversation(0))).toBe("one");
    server.addScript({ name: "added", turns: [{ raw: "two" }] });
    expect(await replyText("added", conversation(0))).toBe("two");
    expect(() => server.addScript({ name: "bad", turns: [{}] } as ReplayScript)).toThrow(/exactly one of `reply`/);
  });

  it("counts chat requests", async () => {
    const before = server.requests;
    await replyText("basic", conversation(0));
    expect(server.requests).toBe(before + 1);
  });

  it("drops a delayed answer when the client hangs up, and keeps serving", async () => {
    const controller = new AbortController();
    const pending = chat("slow", conversation(0), { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    await expect(pending).rejects.toThrow();
    expect(JSON.parse(await replyText("basic", conversation(0)))).toEqual({ tool: "list_files" });
  });

  // The 5 s limit is far below the script's 30 s delay: close() must not wait for it.
  it("closes at once even while a delayed answer is pending", { timeout: 5_000 }, async () => {
    const other = await startReplayServer({ scripts: SCRIPTS, latencyMs: 5 });
    const pending = chat("slow", conversation(0), { url: other.url }).then(
      (response) => response.status,
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await other.close();
    // The client sees its connection closed, not a reply.
    expect(await pending).toBeInstanceOf(Error);
  });
});
