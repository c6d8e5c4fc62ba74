import { ClientRegistry } from "@boundaryml/baml";
import { describe, expect, it } from "vitest";
import { b } from "../../baml_client";
import {
  calibratedBudget,
  contextWindowOf,
  conversationBudget,
  estimateCalibration,
  estimateTokens,
  MAX_PROMPT_TOKENS,
  parseContextWindows,
  promptBudget,
  SYSTEM_PROMPT_TOKENS,
} from "./context-budget";

const settings = { defaultTokens: 32_000, perModel: parseContextWindows("") };

describe("contextWindowOf", () => {
  it("knows common models by their id's prefix, the longest prefix winning", () => {
    expect(contextWindowOf({ label: "openai/gpt-4o-mini", model: "gpt-4o-mini" }, settings)).toBe(128_000);
    expect(contextWindowOf({ label: "anthropic/claude-3-5-haiku", model: "claude-3-5-haiku" }, settings)).toBe(200_000);
    expect(contextWindowOf({ label: "anthropic/claude-sonnet-4-5", model: "claude-sonnet-4-5" }, settings)).toBe(
      1_000_000,
    );
  });

  it("falls back to AGENT_CONTEXT_TOKENS for a model it does not know", () => {
    expect(contextWindowOf({ label: "openai-compatible/my-model", model: "my-model" }, settings)).toBe(32_000);
  });

  it("takes AGENT_CONTEXT_WINDOWS over the table, by the whole spec or the model id", () => {
    const perModel = parseContextWindows(" openai/gpt-4o=64000 , llama3=8192");
    expect(perModel).toEqual(
      new Map([
        ["openai/gpt-4o", 64_000],
        ["llama3", 8_192],
      ]),
    );
    expect(contextWindowOf({ label: "openai/gpt-4o", model: "gpt-4o" }, { ...settings, perModel })).toBe(64_000);
    expect(contextWindowOf({ label: "openai-compatible/llama3", model: "llama3" }, { ...settings, perModel })).toBe(
      8_192,
    );
  });
});

describe("promptBudget", () => {
  it("leaves room for the answer and caps very large windows", () => {
    expect(promptBudget(8_000).promptTokens).toBe(6_000);
    expect(promptBudget(200_000).promptTokens).toBe(160_000);
    expect(promptBudget(1_000_000).promptTokens).toBe(MAX_PROMPT_TOKENS);
  });

  it("gives the turns what the system prompt and the project context leave", () => {
    const turns = conversationBudget(promptBudget(20_000), 1_000);
    expect(turns.tokens).toBe(15_000 - SYSTEM_PROMPT_TOKENS - 1_000);
    expect(turns.keepVerbatimTokens).toBeLessThan(turns.tokens / 2);
  });

  it("estimates about four characters a token", () => {
    expect(estimateTokens("")).toBe(0);
    expect(estimateTokens("abcde")).toBe(2);
  });
});

describe("SYSTEM_PROMPT_TOKENS", () => {
  it("covers the agents' real system prompt and answer format, rendered by BAML with no context or turns", async () => {
    const registry = new ClientRegistry();
    registry.addLlmClient("measure", "openai-generic", { base_url: "http://127.0.0.1:9/v1", model: "m" });
    registry.setPrimary("measure");
    const context = { mode: "build", iteration: 1, max_iterations: 50, files: [], todos: [] };
    for (const request of [
      await b.request.CodingAgent(context, [], { clientRegistry: registry }),
      await b.request.AskAgent(context, [], { clientRegistry: registry }),
    ]) {
      const { messages } = request.body.json() as { messages: { content: string | { text?: string }[] }[] };
      const text = messages
        .map((m) => (typeof m.content === "string" ? m.content : m.content.map((p) => p.text ?? "").join("")))
        .join("\n");
      expect(estimateTokens(text)).toBeGreaterThan(300);
      expect(estimateTokens(text)).toBeLessThanOrEqual(SYSTEM_PROMPT_TOKENS);
    }
  });
});

describe("estimateCalibration", () => {
  const answer = (inputTokens: number, promptEstimate?: number, kind = "action") => ({
    kind,
    payload: { usage: { inputTokens, outputTokens: 10 }, ...(promptEstimate ? { promptEstimate } : {}) },
  });

  it("is the provider's count over the estimate of the latest answer that recorded both", () => {
    const entries = [answer(2_000, 1_000), { kind: "result", payload: {} }, answer(13_000, 10_000, "reply")];
    expect(estimateCalibration(entries)).toBeCloseTo(1.3);
    // An answer from before estimates were saved (or a provider that reports no usage) is skipped.
    expect(estimateCalibration([answer(2_000, 1_000), answer(5_000), answer(0, 4_000)])).toBe(2);
  });

  it("never loosens the estimate, is bounded, and is 1 with nothing to go on", () => {
    expect(estimateCalibration([answer(500, 1_000)])).toBe(1);
    expect(estimateCalibration([answer(90_000, 1_000)])).toBe(3);
    expect(estimateCalibration([])).toBe(1);
  });

  it("shrinks the prompt budget by as much as the provider counted over the estimate", () => {
    const budget = promptBudget(128_000);
    expect(calibratedBudget(budget, 1.25).promptTokens).toBe(Math.floor(budget.promptTokens / 1.25));
    expect(calibratedBudget(budget, 1)).toEqual(budget);
  });
});
