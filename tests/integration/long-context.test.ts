/**
 * Bounded context, end to end: a scripted session long enough to outgrow a
 * small context window (AGENT_CONTEXT_TOKENS=6000) runs through the real
 * engine, BAML client and sandbox. The replay stand-in logs every request's
 * size: each stays under the prompt budget, the summary requests carry the
 * facts, the next request carries the summary, the raw history stays in
 * Postgres, and the scripted turns still line up after each compaction.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, runEvents, runs } from "../../db/schema";
import { SUMMARY_REQUEST_PHRASE } from "../../model-replay/answer";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

const CONTEXT_TOKENS = 6_000;

let stack: Stack;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_CONTEXT_TOKENS: String(CONTEXT_TOKENS) } });
  app = await import("../../app/models/runs.server");
});

afterAll(async () => {
  await stack?.stop();
});

const PROMPT = "Build a recipe box: recipes with tags, searchable by tag";

/** A plan, two files, then twenty commands with long outputs (each different, so nothing looks stuck), then the reply. */
function longSession(): Turn[] {
  const recipes = `export const RECIPES = [\n${Array.from({ length: 12 }, (_, i) => `  { id: ${i}, name: "Recipe ${i}", tags: ["quick", "veg"] },`).join("\n")}\n];\n`;
  const tags = `import { RECIPES } from "./recipes.js";\nexport const byTag = (tag) => RECIPES.filter((r) => r.tags.includes(tag));\n`;
  return [
    turn.todos(["Recipe data in recipes.js", "in_progress"], ["Tag search in tags.js", "pending"]),
    turn.write("recipes.js", recipes),
    turn.write("tags.js", tags),
    ...Array.from({ length: 20 }, (_, i) => turn.run(`seq ${i * 1000} ${i * 1000 + 300}`)),
    turn.reply("The recipe box is done: `recipes.js` holds the recipes, `tags.js` finds them by tag."),
  ];
}

describe("a long session under a small context window", () => {
  it("compacts older turns into summaries, keeps every prompt under budget and the facts in the summaries", async () => {
    const { db } = stack.database;
    const { promptBudget } = await import("../../inngest/agent/context-budget");
    const { renderConversation } = await import("../../inngest/agent/conversation");
    const { turnsTokens } = await import("../../inngest/agent/compaction");
    const { user, project } = await createBuilder(db);
    const model = scripted(stack.replay, longSession());
    const name = model.split("/")[1]!;
    const promptsBefore = stack.replay.recentPrompts.length;
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: PROMPT, mode: "build" },
      model,
    });

    const last = await waitForRunToFinish(stack.database, run, 120_000);
    // The scripted reply, at the scripted turn: the turns a summary stands for were counted.
    expect(last.type).toBe("complete");
    expect(last.data.reply).toMatch(/^The recipe box is done/);

    const requests = stack.replay.requestLog.filter((r) => r.model === name);
    const turns = requests.filter((r) => typeof r.turn === "number");
    const summaries = requests.filter((r) => r.turn === "summary");
    expect(new Set(turns.map((r) => r.turn))).toEqual(new Set(longSession().map((_, i) => i)));
    expect(summaries.length).toBeGreaterThanOrEqual(2);
    // Every request, the summaries' included, stayed under the prompt budget.
    const budget = promptBudget(CONTEXT_TOKENS).promptTokens;
    for (const request of requests) expect(request.promptTokens).toBeLessThanOrEqual(budget);

    // Postgres keeps the raw history: every action and result, plus the summaries.
    const entries = await db
      .select()
      .from(agentEntries)
      .where(eq(agentEntries.runId, run.id))
      .orderBy(asc(agentEntries.id));
    expect(entries.filter((e) => e.kind === "action")).toHaveLength(23);
    expect(entries.filter((e) => e.kind === "result")).toHaveLength(23);
    const summaryRows = entries.filter((e) => e.kind === "summary");
    expect(summaryRows).toHaveLength(summaries.length);
    // Sent whole, the history would have been far over the budget.
    const uncompacted = renderConversation(entries.filter((e) => e.kind !== "summary"));
    expect(turnsTokens(uncompacted)).toBeGreaterThan(2 * budget);

    // The summary requests carried the facts; the next request carried the summary.
    const prompts = stack.replay.recentPrompts.slice(promptsBefore);
    const summaryAt = prompts.findIndex((p) => p.includes(SUMMARY_REQUEST_PHRASE));
    expect(summaryAt).toBeGreaterThan(0);
    expect(prompts[summaryAt]).toContain(PROMPT);
    expect(prompts[summaryAt]).toContain('"path":"recipes.js"');
    const firstSummary = String(summaryRows[0]!.payload.summary);
    expect(firstSummary).toContain("Files written: recipes.js, tags.js");
    expect(firstSummary).toContain(`Builder asked: ${PROMPT}`);
    expect(prompts[summaryAt + 1]).toContain(firstSummary);
    expect(prompts[summaryAt + 1]).toMatch(/\[\d+ earlier turns of yours are summarized here/);
    // Later compactions fold the earlier summary in: the facts from the first steps survive them.
    const lastSummary = String(summaryRows.at(-1)!.payload.summary);
    expect(lastSummary).toContain("Files written: recipes.js, tags.js");
    expect(lastSummary).toContain(`Builder asked: ${PROMPT}`);
    expect(prompts.at(-1)).toContain(lastSummary);

    // The builder saw each compaction, once.
    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
    const compacted = events.filter((e) => e.type === "compacted");
    expect(compacted.map((e) => e.data.iteration)).toEqual(summaryRows.map((e) => e.iteration));
    expect(compacted.every((e) => e.writes === 1 && Number(e.data.turns) > 0)).toBe(true);
    // A compacted iteration began once: no row was written twice (that would mean a step re-ran).
    expect(events.filter((e) => e.writes !== 1)).toEqual([]);

    // The summaries' tokens count in the run's usage.
    const [row] = await db.select().from(runs).where(eq(runs.id, run.id));
    const usageOf = (rows: typeof entries) =>
      rows.reduce((sum, e) => sum + ((e.payload.usage as { inputTokens?: number } | undefined)?.inputTokens ?? 0), 0);
    expect(usageOf(summaryRows)).toBeGreaterThan(0);
    expect(row!.inputTokens).toBe(usageOf(entries));
  });

  it("does not summarize twice: a compact step run again finds its summary", async () => {
    const { db } = stack.database;
    const { createAgentContext } = await import("../../inngest/agent/context");
    const { compact } = await import("../../inngest/agent/compact");
    const [summary] = await db.select().from(agentEntries).where(eq(agentEntries.kind, "summary")).limit(1);
    expect(summary).toBeDefined();
    const [run] = await db.select().from(runs).where(eq(runs.id, summary!.runId));
    const agent = createAgentContext();
    const requests = stack.replay.requests;
    const again = await compact(
      agent,
      { ...run!, active: true, needsTitle: false },
      summary!.iteration,
      Number(summary!.payload.coversThrough),
    );
    expect(again).toEqual({ next: "think" });
    expect(stack.replay.requests).toBe(requests);
    const rows = await db.select().from(agentEntries).where(eq(agentEntries.runId, run!.id));
    expect(rows.filter((e) => e.kind === "summary" && e.iteration === summary!.iteration)).toEqual([summary]);
  });
});
