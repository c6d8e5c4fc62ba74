import { describe, expect, it } from "vitest";
import type { AgentEntry } from "../../db/schema";
import { compactionCut, planConversation, turnsTokens } from "./compaction";
import { renderConversation, verbatimEntries } from "./conversation";

let nextId = 1;
function entry(iteration: number, kind: AgentEntry["kind"], payload: Record<string, unknown>): AgentEntry {
  return { id: nextId++, runId: "r1", projectId: "p", iteration, kind, payload, createdAt: new Date() };
}

/** A prompt, then `steps` reads of a file whose content is `resultChars` long. */
function session(steps: number, resultChars: number): AgentEntry[] {
  const entries = [entry(0, "user", { prompt: "Build a recipe box" })];
  for (let i = 1; i <= steps; i++) {
    entries.push(entry(i, "action", { action: { tool: "read_file", path: `f${i}.js` } }));
    entries.push(entry(i, "result", { tool: "read_file", ok: true, content: `${i}:`.padEnd(resultChars, "x") }));
  }
  return entries;
}

describe("planConversation", () => {
  it("sends everything as it is while it fits", () => {
    const entries = session(3, 100);
    const plan = planConversation(entries, { tokens: 10_000, keepVerbatimTokens: 4_000 });
    expect(plan.turns).toEqual(renderConversation(entries));
    expect(plan.trimmed.size).toBe(0);
    expect(plan.compactThrough).toBeUndefined();
  });

  it("trims older results first, oldest first, never the newest two", () => {
    const entries = session(6, 4_000);
    const full = turnsTokens(renderConversation(entries));
    // Room for all but about two of the long results.
    const plan = planConversation(entries, { tokens: full - 1_500, keepVerbatimTokens: 1_000 });
    expect(plan.compactThrough).toBeUndefined();
    expect(plan.tokens).toBeLessThanOrEqual(full - 1_500);
    const results = entries.filter((e) => e.kind === "result");
    expect([...plan.trimmed]).toEqual([results[0]!.id, results[1]!.id]);
    expect(plan.turns.at(-1)!.content).toContain("x".repeat(3_000));
  });

  it("asks for compaction when trimming is not enough, keeping the newest turns whole", () => {
    const entries = session(40, 2_000);
    const budget = { tokens: 3_000, keepVerbatimTokens: 1_200 };
    const plan = planConversation(entries, budget);
    expect(plan.tokens).toBeGreaterThan(budget.tokens);
    const through = plan.compactThrough!;
    const cut = entries.find((e) => e.id === through)!;
    // The cut falls after a result: an action is never parted from its result.
    expect(cut.kind).toBe("result");
    // With a summary in place of what it covers, the turns fit again, with room to grow.
    const summary = entry(41, "summary", {
      summary: "Read files f1 to f30.",
      coversThrough: through,
      summarizedTurns: 30,
    });
    const after = planConversation([...entries, summary], budget);
    expect(after.compactThrough).toBeUndefined();
    expect(after.tokens).toBeLessThanOrEqual(budget.keepVerbatimTokens + 100);
    expect(verbatimEntries([...entries, summary])[0]!.kind).toBe("action");
  });

  it("is pure: the same entries and budget give the same plan", () => {
    const entries = session(30, 3_000);
    const budget = { tokens: 4_000, keepVerbatimTokens: 1_600 };
    expect(planConversation(entries, budget)).toEqual(planConversation(entries, budget));
  });
});

describe("compactionCut", () => {
  it("keeps at least the newest action and its result, even when they alone are over the share", () => {
    const entries = session(3, 20_000);
    const through = compactionCut(verbatimEntries(entries), new Set(), 100);
    expect(through).toBe(entries.at(-3)!.id);
  });

  it("has nothing to cut when only the newest turn is there", () => {
    const entries = session(1, 20_000).slice(1);
    expect(compactionCut(entries, new Set(), 100)).toBeUndefined();
  });
});
