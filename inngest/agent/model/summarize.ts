/**
 * The compaction's model call: folds older turns (and the previous summary)
 * into one summary. Transport failures are retried like the agent's own calls
 * (retry.ts) and then thrown, for the compact step to retry or fail.
 */
import { Collector, type ClientRegistry } from "@boundaryml/baml";
import { b, type ConversationTurn, type Todo } from "../../../baml_client";
import { bamlClientOptions } from "./client";
import { usageOf, type ModelUsage } from "./next-action";
import { withModelRetry } from "./retry";

/** A summary never grows past this (about 2,000 tokens): it is sent with every later step. */
export const MAX_SUMMARY_CHARS = 8_000;

export function boundedSummary(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length <= MAX_SUMMARY_CHARS) return trimmed;
  return `${trimmed.slice(0, MAX_SUMMARY_CHARS)}\n[… the summary was cut at ${MAX_SUMMARY_CHARS} characters]`;
}

export async function summarizeSession(input: {
  registry: ClientRegistry;
  previousSummary?: string;
  turns: ConversationTurn[];
  todos: Todo[];
  signal?: AbortSignal;
}): Promise<{ summary: string; usage: ModelUsage }> {
  const collector = new Collector("summarize-session");
  const options = {
    ...bamlClientOptions(input.registry),
    collector,
    ...(input.signal ? { signal: input.signal } : {}),
  };
  const text = await withModelRetry(
    () => b.SummarizeSession(input.previousSummary ?? null, input.turns, input.todos, options),
    { signal: input.signal },
  );
  return { summary: boundedSummary(text), usage: usageOf(collector, "summary") };
}
