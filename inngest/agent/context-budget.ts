/**
 * How many tokens of prompt a model may be sent: its context window (a table
 * of known models, overridden per model by AGENT_CONTEXT_WINDOWS, else
 * AGENT_CONTEXT_TOKENS) minus room for its answer. Tokens are estimated at
 * about 4 characters each, which is what providers' tokenizers give for
 * English prose and code within some tens of percent; the reserve below
 * absorbs the error, and each answer calibrates the next estimate: where the
 * provider counted more tokens than estimated for what was sent (code,
 * non-English text), the budget shrinks by as much. Pure.
 */
import type { ModelConfig } from "./model/config";

/** Context windows of models people use with Dyno, by model id prefix (the longest matching prefix wins). */
export const KNOWN_CONTEXT_WINDOWS: Readonly<Record<string, number>> = {
  "gpt-4.1": 1_047_576,
  "gpt-4o": 128_000,
  "gpt-5": 400_000,
  o3: 200_000,
  "o4-mini": 200_000,
  "claude-": 200_000,
  "claude-sonnet-4": 1_000_000,
  "gemini-2.5": 1_048_576,
  "llama-3.1": 128_000,
  "llama3.1": 128_000,
  "qwen2.5-coder": 32_768,
  "deepseek-": 128_000,
};

/**
 * The system prompt and the answer format, rendered (without the project context or any turn): at most this
 * (context-budget.test.ts renders the real prompts through BAML and checks it).
 */
export const SYSTEM_PROMPT_TOKENS = 1_500;

/** About 4 characters a token; never less than one token for a non-empty text. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** "model=tokens,…" (AGENT_CONTEXT_WINDOWS) into a map; the key is the whole model spec or the model id. */
export function parseContextWindows(text: string): Map<string, number> {
  const windows = new Map<string, number>();
  for (const pair of text.split(",")) {
    const [key, value] = pair.split("=").map((part) => part.trim());
    if (key && value && /^\d+$/.test(value)) windows.set(key, Number(value));
  }
  return windows;
}

export interface ContextSettings {
  /** AGENT_CONTEXT_TOKENS: the window of a model nobody told us about. */
  defaultTokens: number;
  /** AGENT_CONTEXT_WINDOWS, parsed. */
  perModel: ReadonlyMap<string, number>;
}

export function contextWindowOf(config: Pick<ModelConfig, "label" | "model">, settings: ContextSettings): number {
  const configured = settings.perModel.get(config.label) ?? settings.perModel.get(config.model);
  if (configured) return configured;
  const id = config.model.toLowerCase();
  const prefix = Object.keys(KNOWN_CONTEXT_WINDOWS)
    .filter((known) => id.startsWith(known))
    .sort((a, b) => b.length - a.length)[0];
  return prefix ? KNOWN_CONTEXT_WINDOWS[prefix]! : settings.defaultTokens;
}

export interface PromptBudget {
  /** The model's context window. */
  windowTokens: number;
  /** The whole prompt stays under this: the window less the answer's room. */
  promptTokens: number;
}

/** A very large window is not filled: past this, prompts only get slower and dearer, not better. */
export const MAX_PROMPT_TOKENS = 160_000;

export function promptBudget(windowTokens: number): PromptBudget {
  // Room for the answer (a whole file written in one action) and for the estimate's error.
  const answerReserve = Math.min(16_000, Math.floor(windowTokens / 4));
  return { windowTokens, promptTokens: Math.min(MAX_PROMPT_TOKENS, windowTokens - answerReserve) };
}

/** A calibration never loosens the estimate, and a wild count (a provider counting cached tokens oddly) is bounded. */
const MAX_CALIBRATION = 3;

/**
 * Provider tokens per estimated token, from the latest answer that recorded both its provider's input count
 * (payload.usage.inputTokens) and the estimate of what was sent (payload.promptEstimate); 1 when none did. At
 * least 1: a provider that counts fewer tokens than estimated leaves room unused rather than risking the window.
 */
export function estimateCalibration(entries: readonly { kind: string; payload: Record<string, unknown> }[]): number {
  for (let i = entries.length - 1; i >= 0; i--) {
    const { kind, payload } = entries[i]!;
    if (kind !== "action" && kind !== "reply") continue;
    const estimate = payload.promptEstimate;
    const counted = (payload.usage as { inputTokens?: unknown } | undefined)?.inputTokens;
    if (typeof estimate !== "number" || typeof counted !== "number" || estimate <= 0 || counted <= 0) continue;
    return Math.min(MAX_CALIBRATION, Math.max(1, counted / estimate));
  }
  return 1;
}

/** The budget in estimated tokens, for a provider that counts `calibration` of its tokens per estimated one. */
export function calibratedBudget(budget: PromptBudget, calibration: number): PromptBudget {
  return { ...budget, promptTokens: Math.floor(budget.promptTokens / Math.max(1, calibration)) };
}

export interface ConversationBudget {
  /** What the conversation turns may take: the prompt budget less the frame (system prompt, format, context). */
  tokens: number;
  /** After a compaction, the recent turns kept verbatim take at most this; the rest goes into the summary. */
  keepVerbatimTokens: number;
}

/** The turns' share of the prompt, given the project context's size (files, todos, app state) for this step. */
export function conversationBudget(budget: PromptBudget, contextTokens: number): ConversationBudget {
  const tokens = Math.max(500, budget.promptTokens - SYSTEM_PROMPT_TOKENS - contextTokens);
  return { tokens, keepVerbatimTokens: Math.floor(tokens * 0.4) };
}
