import { vi, describe, expect, it } from "vitest";
import { b } from "../../../baml_client";
import { bamlClientOptions, createClientRegistry } from "./client";
import type { ModelConfig } from "./config";

vi.hoisted(() => {
  process.env.BAML_LOG = "warn";
});

const context = { mode: "build", iteration: 1, max_iterations: 10, files: [], todos: [] };
const conversation = [{ role: "user" as const, content: "Build a todo page" }];

/** The HTTP request BAML would send for a config (built, not sent). */
async function requestFor(config: ModelConfig, options: Parameters<typeof createClientRegistry>[1] = {}) {
  const request = await b.request.CodingAgent(
    context,
    conversation,
    bamlClientOptions(createClientRegistry(config, options)),
  );
  return {
    url: request.url,
    headers: request.headers as Record<string, string>,
    body: request.body.json() as Record<string, unknown>,
  };
}

describe("createClientRegistry", () => {
  it("sends openai/<model> to OpenAI with the key", async () => {
    const request = await requestFor({
      provider: "openai",
      model: "gpt-4.1",
      apiKey: "sk-test",
      label: "openai/gpt-4.1",
    });
    expect(request.url).toBe("https://api.openai.com/v1/chat/completions");
    expect(request.headers.authorization).toBe("Bearer sk-test");
    expect(request.body.model).toBe("gpt-4.1");
  });

  it("sends openai/<model> to AGENT_BASE_URL when set", async () => {
    const request = await requestFor({
      provider: "openai",
      model: "gpt-4.1",
      apiKey: "k",
      baseUrl: "http://127.0.0.1:9999/v1",
      label: "openai/gpt-4.1",
    });
    expect(request.url).toBe("http://127.0.0.1:9999/v1/chat/completions");
  });

  it("sends anthropic/<model> to Anthropic's messages API with the key and max_tokens", async () => {
    const request = await requestFor({
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      apiKey: "ak-test",
      label: "anthropic/claude-sonnet-4-5",
    });
    expect(request.url).toBe("https://api.anthropic.com/v1/messages");
    expect(request.headers["x-api-key"]).toBe("ak-test");
    expect(request.body).toMatchObject({ model: "claude-sonnet-4-5", max_tokens: 8192 });
    // The system prompt goes in Anthropic's own field.
    expect(typeof request.body.system === "string" || Array.isArray(request.body.system)).toBe(true);
  });

  it("sends openai-compatible/<model> to its base URL, with the key only when given", async () => {
    const config: ModelConfig = {
      provider: "openai-compatible",
      model: "llama3.1:8b",
      baseUrl: "http://127.0.0.1:11434/v1",
      label: "x",
    };
    const keyless = await requestFor(config);
    expect(keyless.url).toBe("http://127.0.0.1:11434/v1/chat/completions");
    expect(keyless.headers.authorization).toBeUndefined();
    expect(keyless.body.model).toBe("llama3.1:8b");
    const keyed = await requestFor({ ...config, apiKey: "local-key" });
    expect(keyed.headers.authorization).toBe("Bearer local-key");
  });

  it("sends replay/<script> to the replay server, naming the script as the model", async () => {
    const request = await requestFor(
      { provider: "replay", model: "todo-page", label: "replay/todo-page" },
      { replayBaseUrl: "http://127.0.0.1:4010/v1" },
    );
    expect(request.url).toBe("http://127.0.0.1:4010/v1/chat/completions");
    expect(request.body.model).toBe("todo-page");
  });

  it("needs the replay server's URL for a replay config", () => {
    expect(() => createClientRegistry({ provider: "replay", model: "todo-page", label: "replay/todo-page" })).toThrow(
      /replayBaseUrl/,
    );
  });
});

describe("createClientRegistry with a fallback", () => {
  it("answers from the fallback when the primary keeps failing with 500s, and from the primary when it answers", async () => {
    const { startReplayServer } = await import("../../../model-replay/server");
    const replay = await startReplayServer({
      scripts: [
        { name: "down", turns: [{ errors: [500, 500, 500, 500, 500, 500], reply: { tool: "list_files" } }] },
        { name: "backup", turns: [{ reply: { tool: "reply_to_user", message: "from the fallback" } }] },
        { name: "up", turns: [{ reply: { tool: "read_file", path: "index.html" } }] },
      ],
    });
    try {
      const config = (model: string, apiKey: string): ModelConfig => ({
        provider: "openai-compatible",
        model,
        baseUrl: replay.url,
        apiKey,
        label: `openai-compatible/${model}`,
      });
      const fallback = config("backup", "sk-fallback");
      const viaFallback = await b.CodingAgent(context, conversation, {
        ...bamlClientOptions(createClientRegistry(config("down", "sk-primary"), { fallback })),
      });
      expect(viaFallback).toMatchObject({ tool: "reply_to_user", message: "from the fallback" });
      expect(replay.requestLog.map((r) => r.model)).toEqual(["down", "backup"]);
      // Each client sends its own key.
      expect(replay.authorizations).toEqual(["Bearer sk-primary", "Bearer sk-fallback"]);

      const direct = await b.CodingAgent(context, conversation, {
        ...bamlClientOptions(createClientRegistry(config("up", "sk-primary"), { fallback })),
      });
      expect(direct).toMatchObject({ tool: "read_file", path: "index.html" });
      expect(replay.requestLog.map((r) => r.model)).toEqual(["down", "backup", "up"]);
    } finally {
      await replay.close();
    }
  });
});

describe("the clients defined in clients.baml, configured per call", () => {
  it("keeps each call's model, key and server its own, with many calls at once", async () => {
    // BAML keeps a defined client built while the env is the same: calls for two builders (two keys, two servers)
    // in flight together must never borrow each other's.
    const { startReplayServer } = await import("../../../model-replay/server");
    const servers = await Promise.all(
      ["first", "second"].map((name) =>
        startReplayServer({
          scripts: [{ name, turns: Array.from({ length: 20 }, () => ({ reply: { tool: "list_files", path: name } })) }],
        }),
      ),
    );
    try {
      const registries = servers.map((server, i) =>
        createClientRegistry({
          provider: "openai-compatible",
          model: i === 0 ? "first" : "second",
          baseUrl: server.url,
          apiKey: `sk-builder-${i}`,
          label: "x",
        }),
      );
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, call) => {
          const i = call % 2;
          const options = bamlClientOptions(registries[i]!, { streaming: call % 4 < 2 });
          const answer =
            call % 4 < 2
              ? b.stream.CodingAgent(context, conversation, options).getFinalResponse()
              : b.CodingAgent(context, conversation, options);
          return answer.then((action) => [i, action] as const);
        }),
      );
      for (const [i, action] of answers) expect(action).toMatchObject({ path: i === 0 ? "first" : "second" });
      servers.forEach((server, i) => {
        expect(server.requestLog).toHaveLength(10);
        expect(new Set(server.requestLog.map((r) => r.model))).toEqual(new Set([i === 0 ? "first" : "second"]));
        expect(new Set(server.authorizations)).toEqual(new Set([`Bearer sk-builder-${i}`]));
      });
    } finally {
      await Promise.all(servers.map((server) => server.close()));
    }
  });

  it("takes nothing from the process's environment: a keyless server gets no key even when DYNO_LLM_API_KEY is set", async () => {
    process.env.DYNO_LLM_API_KEY = "sk-from-the-process";
    try {
      const request = await requestFor({
        provider: "openai-compatible",
        model: "m",
        baseUrl: "http://127.0.0.1:11434/v1",
        label: "x",
      });
      expect(request.headers.authorization).toBeUndefined();
      const openai = await requestFor({ provider: "openai", model: "gpt-4.1", apiKey: "sk-own", label: "x" });
      expect(openai.headers.authorization).toBe("Bearer sk-own");
    } finally {
      delete process.env.DYNO_LLM_API_KEY;
    }
  });
});
