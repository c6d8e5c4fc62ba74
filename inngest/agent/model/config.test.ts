import { describe, expect, it } from "vitest";
import { ModelNotConfiguredError, parseModelSpec } from "./config";

function configError(run: () => unknown): ModelNotConfiguredError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelNotConfiguredError);
    return error as ModelNotConfiguredError;
  }
  throw new Error("expected a ModelNotConfiguredError");
}

describe("parseModelSpec", () => {
  it("reads openai/<model> with OPENAI_API_KEY", () => {
    expect(parseModelSpec({ AGENT_MODEL: "openai/gpt-4.1", OPENAI_API_KEY: "sk-1" })).toEqual({
      provider: "openai",
      model: "gpt-4.1",
      apiKey: "sk-1",
      label: "openai/gpt-4.1",
    });
  });

  it("lets AGENT_BASE_URL point openai at another endpoint", () => {
    const config = parseModelSpec({
      AGENT_MODEL: "openai/gpt-4.1",
      OPENAI_API_KEY: "sk-1",
      AGENT_BASE_URL: "https://proxy.example/v1/",
    });
    expect(config.baseUrl).toBe("https://proxy.example/v1");
  });

  it("reads anthropic/<model> with ANTHROPIC_API_KEY", () => {
    expect(parseModelSpec({ AGENT_MODEL: "anthropic/claude-sonnet-4-5", ANTHROPIC_API_KEY: "k" })).toEqual({
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      apiKey: "k",
      label: "anthropic/claude-sonnet-4-5",
    });
  });

  it("reads openai-compatible/<model> with AGENT_BASE_URL, the key optional, slashes and colons kept in the model", () => {
    expect(
      parseModelSpec({ AGENT_MODEL: "openai-compatible/llama3.1:8b", AGENT_BASE_URL: "http://127.0.0.1:11434/v1" }),
    ).toEqual({
      provider: "openai-compatible",
      model: "llama3.1:8b",
      baseUrl: "http://127.0.0.1:11434/v1",
      label: "openai-compatible/llama3.1:8b",
    });
    const vllm = parseModelSpec({
      AGENT_MODEL: "openai-compatible/meta-llama/Llama-3.1-8B-Instruct",
      AGENT_BASE_URL: "http://127.0.0.1:8000/v1",
      AGENT_API_KEY: "token",
    });
    expect(vllm).toMatchObject({ model: "meta-llama/Llama-3.1-8B-Instruct", apiKey: "token" });
  });

  it("reads replay/<script> with no key or URL", () => {
    expect(parseModelSpec({ AGENT_MODEL: "replay/todo-page" })).toEqual({
      provider: "replay",
      model: "todo-page",
      label: "replay/todo-page",
    });
  });

  it("takes the spec from its second argument over AGENT_MODEL", () => {
    expect(parseModelSpec({ AGENT_MODEL: "openai/gpt-4.1" }, "replay/x").label).toBe("replay/x");
  });

  it("names every way to configure a model when none is set", () => {
    for (const spec of [undefined, "", "   "]) {
      const error = configError(() => parseModelSpec({ AGENT_MODEL: spec }));
      expect(error.message).toBe(
        "No model is configured: set AGENT_MODEL to openai/<model> (with OPENAI_API_KEY), anthropic/<model> (with ANTHROPIC_API_KEY) " +
          "or openai-compatible/<model> (with AGENT_BASE_URL), or run the offline demo.",
      );
    }
  });

  it("rejects a spec without a known provider or a model", () => {
    for (const spec of ["gpt-4.1", "gemini/pro", "openai/", "/gpt-4.1"]) {
      const error = configError(() => parseModelSpec({ AGENT_MODEL: spec, OPENAI_API_KEY: "k" }));
      expect(error.message).toContain(`AGENT_MODEL "${spec}" is not a model spec`);
      expect(error.message).toContain("openai-compatible/<model> (with AGENT_BASE_URL)");
    }
  });

  it("names the missing key or URL", () => {
    expect(configError(() => parseModelSpec({ AGENT_MODEL: "openai/gpt-4.1", ANTHROPIC_API_KEY: "k" })).message).toBe(
      "AGENT_MODEL is openai/gpt-4.1, which needs OPENAI_API_KEY: set OPENAI_API_KEY.",
    );
    expect(configError(() => parseModelSpec({ AGENT_MODEL: "anthropic/claude", OPENAI_API_KEY: " " })).message).toBe(
      "AGENT_MODEL is anthropic/claude, which needs ANTHROPIC_API_KEY: set ANTHROPIC_API_KEY.",
    );
    expect(configError(() => parseModelSpec({ AGENT_MODEL: "openai-compatible/qwen" })).message).toContain(
      "which needs AGENT_BASE_URL: set AGENT_BASE_URL",
    );
  });

  it("rejects an AGENT_BASE_URL that is not an http(s) URL", () => {
    expect(
      configError(() => parseModelSpec({ AGENT_MODEL: "openai-compatible/q", AGENT_BASE_URL: "localhost:11434" }))
        .message,
    ).toContain("AGENT_BASE_URL");
    expect(
      configError(() => parseModelSpec({ AGENT_MODEL: "openai-compatible/q", AGENT_BASE_URL: "not a url" })).message,
    ).toContain("is not a URL");
  });
});
