/**
 * Budgets: the tokens a run may use (AGENT_RUN_TOKEN_BUDGET) and a builder
 * may use per day (AGENT_DAILY_TOKEN_BUDGET, runs created since midnight
 * UTC), checked by the think step before it asks the model, so a run over
 * budget ends at a step boundary, never in the middle of a tool. And what a
 * run costs, estimated from a price table (built in for well-known models,
 * AGENT_PRICES for the rest or to correct it).
 */
import { and, eq, gte, not, inArray, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { Db } from "../../db/client";
import { agentEntries, runs } from "../../db/schema";

export interface TokenBudgets {
  /** Input + output tokens per run; 0: no limit. */
  runTokens: number;
  /** Input + output tokens per builder per day (UTC); 0: no limit. */
  dailyTokens: number;
}

/** US dollars per million tokens. */
export interface Price {
  input: number;
  output: number;
}

/**
 * List prices of well-known models (USD per million tokens, as published by the providers in 2025), by model id
 * prefix, the longest matching prefix winning. Prices change: AGENT_PRICES overrides any of them.
 */
export const KNOWN_PRICES: Readonly<Record<string, Price>> = {
  "gpt-4.1": { input: 2, output: 8 },
  "gpt-4.1-mini": { input: 0.4, output: 1.6 },
  "gpt-4.1-nano": { input: 0.1, output: 0.4 },
  "gpt-4o": { input: 2.5, output: 10 },
  "gpt-4o-mini": { input: 0.15, output: 0.6 },
  "gpt-5": { input: 1.25, output: 10 },
  "gpt-5-mini": { input: 0.25, output: 2 },
  o3: { input: 2, output: 8 },
  "o4-mini": { input: 1.1, output: 4.4 },
  "claude-sonnet-4": { input: 3, output: 15 },
  "claude-opus-4": { input: 15, output: 75 },
  "claude-3-5-haiku": { input: 0.8, output: 4 },
  "claude-haiku-4": { input: 1, output: 5 },
};

const PRICE_PAIR = /^\s*([^=,\s]+)\s*=\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)\s*$/;

/** Checks AGENT_PRICES: "model=input/output,…" in USD per million tokens. */
export function isPriceList(text: string): boolean {
  return text.trim() === "" || text.split(",").every((pair) => PRICE_PAIR.test(pair));
}

/** AGENT_PRICES into a map; the key is the whole model spec ("openai/gpt-4.1") or the model id. */
export function parsePrices(text: string): Map<string, Price> {
  const prices = new Map<string, Price>();
  if (!text.trim()) return prices;
  for (const pair of text.split(",")) {
    const match = PRICE_PAIR.exec(pair);
    if (match) prices.set(match[1]!, { input: Number(match[2]), output: Number(match[3]) });
  }
  return prices;
}

/** The price of a run's model spec; zero for a replay; undefined when nobody said. */
export function priceOf(spec: string, configured: ReadonlyMap<string, Price>): Price | undefined {
  const slash = spec.indexOf("/");
  const provider = spec.slice(0, slash);
  const model = spec.slice(slash + 1);
  const own = configured.get(spec) ?? configured.get(model);
  if (own) return own;
  if (provider === "replay") return { input: 0, output: 0 };
  // The table holds the providers' own models; a model served elsewhere (openai-compatible) may cost anything.
  if (provider !== "openai" && provider !== "anthropic") return undefined;
  const id = model.toLowerCase();
  const prefix = Object.keys(KNOWN_PRICES)
    .filter((known) => id.startsWith(known))
    .sort((a, b) => b.length - a.length)[0];
  return prefix ? KNOWN_PRICES[prefix] : undefined;
}

/** Estimated cost in USD; undefined when the model's price is unknown. */
export function estimatedCost(
  usage: { inputTokens: number; outputTokens: number },
  price: Price | undefined,
): number | undefined {
  if (!price) return undefined;
  return (usage.inputTokens * price.input + usage.outputTokens * price.output) / 1_000_000;
}

const formatTokens = (n: number) => n.toLocaleString("en-US");

/** Why the run must end now, or undefined while it is within both budgets. */
export function overBudget(used: { runTokens: number; dayTokens: number }, budgets: TokenBudgets): string | undefined {
  if (budgets.runTokens > 0 && used.runTokens >= budgets.runTokens) {
    return (
      `The run used its token budget (${formatTokens(used.runTokens)} of ${formatTokens(budgets.runTokens)} tokens, ` +
      "AGENT_RUN_TOKEN_BUDGET) and was stopped before its next step. Send another prompt to continue."
    );
  }
  if (budgets.dailyTokens > 0 && used.dayTokens >= budgets.dailyTokens) {
    return (
      `You used today's token budget (${formatTokens(used.dayTokens)} of ${formatTokens(budgets.dailyTokens)} tokens ` +
      "since midnight UTC, AGENT_DAILY_TOKEN_BUDGET), so the run was stopped before its next step. " +
      "It resets at midnight UTC."
    );
  }
  return undefined;
}

/** The tokens a builder's runs used since midnight UTC. */
export async function builderTokensToday(db: Pick<Db, "select">, userId: string, now = new Date()): Promise<number> {
  const [day] = await db
    .select({ tokens: sql<string>`coalesce(sum(${runs.inputTokens} + ${runs.outputTokens}), 0)` })
    .from(runs)
    .where(and(eq(runs.userId, userId), gte(runs.createdAt, startOfUtcDay(now))));
  return Number(day?.tokens ?? 0);
}

/** Why a new prompt cannot start a run today, or undefined while the builder is within the daily budget. */
export function dailyBudgetSpent(dayTokens: number, dailyBudget: number): string | undefined {
  if (dailyBudget <= 0 || dayTokens < dailyBudget) return undefined;
  return (
    `You used today's token budget (${formatTokens(dayTokens)} of ${formatTokens(dailyBudget)} tokens since ` +
    "midnight UTC, AGENT_DAILY_TOKEN_BUDGET), so this prompt was not sent. It resets at midnight UTC."
  );
}

/** Midnight UTC of `now`'s day. */
export function startOfUtcDay(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
}

/** The tokens this run used, and its builder's runs created today (UTC), this run included. */
export async function tokensUsed(
  db: Db,
  run: { id: string },
  now = new Date(),
): Promise<{ runTokens: number; dayTokens: number }> {
  // One statement: the run's own tokens and its builder's today (every iteration asks).
  const day = alias(runs, "day_runs");
  const [own] = await db
    .select({
      tokens: sql<number>`${runs.inputTokens} + ${runs.outputTokens}`,
      dayTokens: sql<string>`(${db
        .select({ tokens: sql`coalesce(sum(${day.inputTokens} + ${day.outputTokens}), 0)` })
        .from(day)
        .where(and(eq(day.userId, runs.userId), gte(day.createdAt, startOfUtcDay(now))))})`,
    })
    .from(runs)
    .where(eq(runs.id, run.id));
  if (!own) return { runTokens: 0, dayTokens: 0 };
  return { runTokens: Number(own.tokens), dayTokens: Number(own.dayTokens) };
}

/**
 * The run's usage once iteration `iteration`'s answer (`answer`) is counted: the usage its other entries record plus
 * this one. Read from agent_entries (no lock on the run's row, which the event lock must come before), and the same
 * when the step saving it runs again.
 */
export async function usageWith(
  db: Pick<Db, "select">,
  runId: string,
  iteration: number,
  answer: { inputTokens: number; outputTokens: number },
): Promise<{ inputTokens: number; outputTokens: number }> {
  const field = (name: "inputTokens" | "outputTokens") =>
    sql<string>`coalesce(sum((${agentEntries.payload}->'usage'->>${name})::int), 0)`;
  const [row] = await db
    .select({ inputTokens: field("inputTokens"), outputTokens: field("outputTokens") })
    .from(agentEntries)
    .where(
      and(
        eq(agentEntries.runId, runId),
        not(and(eq(agentEntries.iteration, iteration), inArray(agentEntries.kind, ["action", "reply"]))!),
      ),
    );
  return {
    inputTokens: Number(row?.inputTokens ?? 0) + answer.inputTokens,
    outputTokens: Number(row?.outputTokens ?? 0) + answer.outputTokens,
  };
}
