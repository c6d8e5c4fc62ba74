/**
 * Keeps the conversation the model is sent under its budget (context-budget.ts).
 * First older tool results are trimmed to their start and end, oldest first;
 * if the turns are still over budget, the plan names the entry through which
 * the older turns should be compacted into a summary (the compact step does
 * it, compact.ts), so that the recent turns kept verbatim fit in part of the
 * budget and the conversation has room to grow again. Pure: the same entries
 * and budget give the same plan, so a retried think sends the same prompt.
 */
import type { AgentEntry } from "../../db/schema";
import { type ConversationBudget, estimateTokens } from "./context-budget";
import { renderConversation, renderEntries, verbatimEntries, type ConversationTurn } from "./conversation";

/** The newest results are never trimmed: the model is usually acting on them. */
export const KEEP_RECENT_RESULTS = 2;

export interface ConversationPlan {
  turns: ConversationTurn[];
  /** The turns' estimated size. */
  tokens: number;
  /** Result entries sent trimmed. */
  trimmed: ReadonlySet<number>;
  /** Still over budget: compact the entries up to and including this one (an agent_entries id). */
  compactThrough?: number;
}

export function turnsTokens(turns: readonly ConversationTurn[]): number {
  return turns.reduce((sum, turn) => sum + estimateTokens(turn.content), 0);
}

function entryTokens(entry: AgentEntry, trimmed: ReadonlySet<number>): number {
  return turnsTokens(renderEntries([entry], { trimmed }));
}

export function planConversation(entries: readonly AgentEntry[], budget: ConversationBudget): ConversationPlan {
  const untrimmed = renderConversation(entries);
  const fullTokens = turnsTokens(untrimmed);
  if (fullTokens <= budget.tokens) return { turns: untrimmed, tokens: fullTokens, trimmed: new Set() };

  // Trim older results, oldest first, until the turns fit (or none is left to trim).
  const verbatim = verbatimEntries(entries);
  const results = verbatim.filter((entry) => entry.kind === "result" && !entry.payload.problem);
  const trimmable = results.slice(0, Math.max(0, results.length - KEEP_RECENT_RESULTS));
  const trimmed = new Set<number>();
  let estimate = fullTokens;
  for (const result of trimmable) {
    if (estimate <= budget.tokens) break;
    const before = entryTokens(result, trimmed);
    trimmed.add(result.id);
    estimate -= before - entryTokens(result, trimmed);
  }
  const turns = renderConversation(entries, { trimmed });
  const tokens = turnsTokens(turns);
  if (tokens <= budget.tokens) return { turns, tokens, trimmed };

  const through = compactionCut(verbatim, trimmed, budget.keepVerbatimTokens);
  return { turns, tokens, trimmed, ...(through !== undefined ? { compactThrough: through } : {}) };
}

/**
 * The last entry to compact: the newest entries that fit `keepTokens` stay verbatim, starting at a turn of the
 * model's or a prompt (an action is never parted from its result). At least the newest action and what follows it
 * stay; undefined when there is nothing older to compact.
 */
export function compactionCut(
  verbatim: readonly AgentEntry[],
  trimmed: ReadonlySet<number>,
  keepTokens: number,
): number | undefined {
  const startsTurn = (entry: AgentEntry) => entry.kind !== "result";
  let kept = 0;
  let keepFrom = verbatim.length;
  for (let i = verbatim.length - 1; i >= 0; i--) {
    kept += entryTokens(verbatim[i]!, trimmed);
    if (kept > keepTokens && keepFrom < verbatim.length) break;
    if (startsTurn(verbatim[i]!)) keepFrom = i;
  }
  if (keepFrom <= 0 || keepFrom >= verbatim.length) return undefined;
  return verbatim[keepFrom - 1]!.id;
}
