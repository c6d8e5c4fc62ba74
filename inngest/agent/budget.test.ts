import { describe, expect, it } from "vitest";
import { formatCost } from "../../app/builder/cost";
import { estimatedCost, isPriceList, overBudget, parsePrices, priceOf, startOfUtcDay } from "./budget";

describe("prices", () => {
  it("knows the providers' well-known models, the longest prefix winning", () => {
    const none = parsePrices("");
    expect(priceOf("openai/gpt-4.1", none)).toEqual({ input: 2, output: 8 });
    expect(priceOf("openai/gpt-4.1-mini-2025-04-14", none)).toEqual({ input: 0.4, output: 1.6 });
    expect(priceOf("anthropic/claude-sonnet-4-5", none)).toEqual({ input: 3, output: 15 });
  });

  it("costs nothing for a replay and is unknown for a model served elsewhere", () => {
    expect(priceOf("replay/todo-page", parsePrices(""))).toEqual({ input: 0, output: 0 });
    expect(priceOf("openai-compatible/gpt-4.1", parsePrices(""))).toBeUndefined();
  });

  it("takes AGENT_PRICES over the table, by the whole spec or the model id", () => {
    const prices = parsePrices("openai/gpt-4.1=1.5/6, llama3=0.1/0.2");
    expect(priceOf("openai/gpt-4.1", prices)).toEqual({ input: 1.5, output: 6 });
    expect(priceOf("openai-compatible/llama3", prices)).toEqual({ input: 0.1, output: 0.2 });
    expect(isPriceList("openai/gpt-4.1=1.5/6, llama3=0.1/0.2")).toBe(true);
    expect(isPriceList("gpt-4.1=2")).toBe(false);
  });

  it("estimates a run's cost from its tokens, and says so plainly", () => {
    const cost = estimatedCost({ inputTokens: 1_000_000, outputTokens: 250_000 }, { input: 2, output: 8 });
    expect(cost).toBe(4);
    expect(estimatedCost({ inputTokens: 5, outputTokens: 5 }, undefined)).toBeUndefined();
    expect(formatCost(cost)).toBe("$4.00");
    expect(formatCost(0.004)).toBe("<$0.01");
    expect(formatCost(0)).toBe("$0");
    expect(formatCost(undefined)).toBe("—");
  });
});

describe("overBudget", () => {
  const budgets = { runTokens: 10_000, dailyTokens: 50_000 };

  it("lets a run go on within both budgets", () => {
    expect(overBudget({ runTokens: 9_999, dayTokens: 49_999 }, budgets)).toBeUndefined();
  });

  it("ends a run at its own budget, then at the builder's daily one, saying which and how much", () => {
    expect(overBudget({ runTokens: 10_000, dayTokens: 10_000 }, budgets)).toBe(
      "The run used its token budget (10,000 of 10,000 tokens, AGENT_RUN_TOKEN_BUDGET) and was stopped before its next step. Send another prompt to continue.",
    );
    expect(overBudget({ runTokens: 10, dayTokens: 52_000 }, budgets)).toMatch(
      /^You used today's token budget \(52,000 of 50,000 tokens since midnight UTC, AGENT_DAILY_TOKEN_BUDGET\)/,
    );
  });

  it("has no limit where the budget is 0", () => {
    expect(overBudget({ runTokens: 1e9, dayTokens: 1e9 }, { runTokens: 0, dailyTokens: 0 })).toBeUndefined();
  });

  it("counts the day from midnight UTC", () => {
    expect(startOfUtcDay(new Date("2026-12-02T23:59:59+05:00")).toISOString()).toBe("2026-12-02T00:00:00.000Z");
  });
});
