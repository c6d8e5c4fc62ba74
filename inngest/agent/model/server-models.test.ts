import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { checkModelBaseUrlTarget, getPinned, ModelBaseUrlError, parseModelBaseUrl } from "./base-url";
import { keyedModelConfig, ModelNotConfiguredError, serverModels } from "./config";

describe("serverModels", () => {
  it("offers AGENT_MODEL first as the default, then AGENT_MODELS, each once, with the problem of one missing its key", () => {
    const offered = serverModels({
      AGENT_MODEL: "openai/gpt-4.1",
      AGENT_MODELS: " anthropic/claude-sonnet-4-5, openai/gpt-4.1 ,,openai/gpt-4.1-mini, replay/todo-page",
      OPENAI_API_KEY: "sk-server",
    });
    expect(offered.map((m) => [m.label, m.isDefault, m.problem === null])).toEqual([
      ["openai/gpt-4.1", true, true],
      ["anthropic/claude-sonnet-4-5", false, false],
      ["openai/gpt-4.1-mini", false, true],
    ]);
    expect(offered[1]!.problem).toMatch(/ANTHROPIC_API_KEY/);
  });

  it("offers nothing when nothing is configured, and no default when AGENT_MODEL is unset", () => {
    expect(serverModels({})).toEqual([]);
    expect(serverModels({ AGENT_MODELS: "openai/gpt-4.1", OPENAI_API_KEY: "k" })).toEqual([
      { label: "openai/gpt-4.1", isDefault: false, problem: null },
    ]);
  });
});

describe("keyedModelConfig", () => {
  it("builds a config from a builder's key, with the key and base URL", () => {
    expect(
      keyedModelConfig({ provider: "openai-compatible", model: "m", baseUrl: "http://h/v1/", apiKey: "sk-b" }),
    ).toEqual({
      provider: "openai-compatible",
      model: "m",
      label: "openai-compatible/m",
      apiKey: "sk-b",
      baseUrl: "http://h/v1",
    });
    expect(keyedModelConfig({ provider: "anthropic", model: "c", baseUrl: null, apiKey: "ak" })).toMatchObject({
      provider: "anthropic",
      apiKey: "ak",
    });
    expect(() => keyedModelConfig({ provider: "openai", model: "g", baseUrl: null, apiKey: null })).toThrow(
      ModelNotConfiguredError,
    );
  });
});

describe("model base URLs", () => {
  it("accepts http(s) URLs without credentials, query or fragment", () => {
    expect(parseModelBaseUrl(" https://llm.example.com/v1/ ")).toBe("https://llm.example.com/v1");
    for (const bad of [
      "",
      "ftp://x/v1",
      "https://u:p@x/v1",
      "https://x/v1?k=1",
      "not a url",
      `https://x/${"a".repeat(2001)}`,
    ])
      expect(() => parseModelBaseUrl(bad)).toThrow(ModelBaseUrlError);
  });

  it("refuses loopback, private and metadata addresses unless allowed, and never the unspecified address", async () => {
    const at = (address: string) => async () => [{ address, family: address.includes(":") ? 6 : 4 }];
    await expect(checkModelBaseUrlTarget("http://127.0.0.1:1/v1", { allowPrivate: false })).rejects.toThrow(
      /loopback.*MODEL_KEYS_ALLOW_PRIVATE=1/,
    );
    await expect(
      checkModelBaseUrlTarget("http://meta.example/v1", { allowPrivate: false, resolve: at("169.254.169.254") }),
    ).rejects.toThrow(/meta\.example \(169\.254\.169\.254\)/);
    await expect(checkModelBaseUrlTarget("http://127.0.0.1:1/v1", { allowPrivate: true })).resolves.toEqual({
      address: "127.0.0.1",
      family: 4,
    });
    await expect(
      checkModelBaseUrlTarget("http://llm.example/v1", { allowPrivate: false, resolve: at("93.184.216.34") }),
    ).resolves.toEqual({ address: "93.184.216.34", family: 4 });
    await expect(
      checkModelBaseUrlTarget("http://nowhere.invalid/v1", {
        allowPrivate: true,
        resolve: async () => {
          throw Object.assign(new Error("nope"), { code: "ENOTFOUND" });
        },
      }),
    ).rejects.toThrow(/could not be found/);
  });
});

describe("getPinned", () => {
  it("connects to the checked address whatever the name resolves to, reads a bounded body, follows no redirect", async () => {
    const server = createServer((req, res) => {
      if (req.url === "/moved") {
        res.writeHead(302, { location: "http://169.254.169.254/" }).end();
        return;
      }
      if (req.url === "/slow") return; // never answers
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ host: req.headers.host, auth: req.headers.authorization, pad: "x".repeat(100_000) }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const pinned = { address: "127.0.0.1", family: 4 as const };
      // "model.invalid" resolves nowhere: only the pin reaches the server, and the Host header keeps the name.
      const answer = await getPinned(`http://model.invalid:${port}/v1/models`, pinned, {
        headers: { authorization: "Bearer k" },
        timeoutMs: 5_000,
        maxBytes: 1_000,
      });
      expect(answer.status).toBe(200);
      expect(answer.body).toHaveLength(1_000);
      expect(answer.body).toContain(`"host":"model.invalid:${port}","auth":"Bearer k"`);
      expect(
        (await getPinned(`http://model.invalid:${port}/moved`, pinned, { headers: {}, timeoutMs: 5_000 })).status,
      ).toBe(302);
      await expect(
        getPinned(`http://model.invalid:${port}/slow`, pinned, { headers: {}, timeoutMs: 200 }),
      ).rejects.toMatchObject({ name: "TimeoutError" });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
