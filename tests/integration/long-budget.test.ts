/**
 * Token budgets and cost, end to end: a run over its own budget, and a run of
 * a builder over today's budget, end failed between steps with the reason;
 * every step's event carries the run's tokens and estimated cost so far (the
 * live card), and the run history shows the cost.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runEvents, runs } from "../../db/schema";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

const RUN_BUDGET = 6_000;
const DAILY_BUDGET = 40_000;

let stack: Stack;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack({
    env: {
      AGENT_RUN_TOKEN_BUDGET: String(RUN_BUDGET),
      AGENT_DAILY_TOKEN_BUDGET: String(DAILY_BUDGET),
      AGENT_PRICES: "priced-budget=2/8",
    },
  });
  app = await import("../../app/models/runs.server");
});

afterAll(async () => {
  await stack?.stop();
});

const eventsOf = (runId: string) =>
  stack.database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.id));

describe("token budgets", () => {
  it("ends a run over its budget before its next step, with the reason, showing tokens and cost as it goes", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    stack.replay.addScript({
      name: "priced-budget",
      turns: Array.from({ length: 30 }, (_, i) => turn.run(`seq ${i} ${i + 200}`)),
    });
    const model = "openai-compatible/priced-budget";
    const run = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "Count" }, model });
    const last = await waitForRunToFinish(stack.database, run, 60_000);
    expect(last.type).toBe("failed");
    expect(last.data.error).toMatch(
      /^The run used its token budget \([\d,]+ of 6,000 tokens, AGENT_RUN_TOKEN_BUDGET\) and was stopped before its next step\./,
    );

    const [row] = await db.select().from(runs).where(eq(runs.id, run.id));
    const used = row!.inputTokens + row!.outputTokens;
    expect(used).toBeGreaterThanOrEqual(RUN_BUDGET);
    const events = await eventsOf(run.id);
    const calls = events.filter((e) => e.type === "tool_call");
    // Between steps: every tool that started also finished, and the run stopped short of its script.
    expect(events.filter((e) => e.type === "tool_result")).toHaveLength(calls.length);
    expect(calls.length).toBeGreaterThan(1);
    expect(calls.length).toBeLessThan(30);
    // Each step tells the live card the tokens so far and their cost at AGENT_PRICES (2 / 8 USD per million).
    const usage = calls.at(-1)!.data.usage as { inputTokens: number; outputTokens: number; costUsd: number };
    expect(usage.inputTokens + usage.outputTokens).toBe(used);
    expect(usage.costUsd).toBeCloseTo((row!.inputTokens * 2 + row!.outputTokens * 8) / 1e6, 10);
    const inputs = calls.map((e) => (e.data.usage as { inputTokens: number }).inputTokens);
    expect(inputs).toEqual([...inputs].sort((a, b) => a - b));

    // The run history shows the same estimate.
    const { summarize } = await import("../../app/builder/builder.server");
    expect(summarize(row!).costUsd).toBeCloseTo(usage.costUsd, 10);
  });

  it("ends a builder's run once their runs today used the daily budget", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    // Earlier today the builder's runs used all but a few tokens of the day's budget: the prompt is taken, and the
    // run ends at the first step after its first answer crossed the line.
    await db.insert(runs).values({
      projectId: project.id,
      userId: user.id,
      prompt: "earlier",
      status: "complete",
      maxIterations: 50,
      inputTokens: DAILY_BUDGET - 20,
      outputTokens: 10,
    });
    const model = scripted(stack.replay, [turn.run("echo once"), turn.run("echo never"), turn.reply("never")]);
    const run = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "More" }, model });
    const last = await waitForRunToFinish(stack.database, run, 60_000);
    expect(last.type).toBe("failed");
    expect(last.data.error).toMatch(/^You used today's token budget \([\d,]+ of 40,000 tokens since midnight UTC/);
    const calls = (await eventsOf(run.id)).filter((e) => e.type === "tool_call");
    expect(calls.map((e) => e.data.description)).toEqual(["Run `echo once`"]);
  });

  it("refuses a prompt once today's budget is spent, before anything is written, saying when it resets", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    await db.insert(runs).values({
      projectId: project.id,
      userId: user.id,
      prompt: "earlier",
      status: "complete",
      maxIterations: 50,
      inputTokens: DAILY_BUDGET,
      outputTokens: 10,
    });
    const model = scripted(stack.replay, [turn.reply("never")]);
    await expect(
      app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "More" }, model }),
    ).rejects.toThrow(
      /^You used today's token budget \(40,010 of 40,000 tokens since midnight UTC, AGENT_DAILY_TOKEN_BUDGET\), so this prompt was not sent\. It resets at midnight UTC\.$/,
    );
    const rows = await db.select().from(runs).where(eq(runs.projectId, project.id));
    expect(rows.map((r) => r.prompt)).toEqual(["earlier"]);
  });
});
