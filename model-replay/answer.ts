/**
 * What the replay server answers to one chat request: pure, apart from the
 * attempt counters used for error injection. The turn is chosen from the
 * request alone (how many assistant messages it carries since the script
 * began), never from server state, so a durable step retried after a crash
 * gets the same reply.
 */
import type { ReplayScript } from "./script";

/** Title requests (BAML's GenerateTitle) carry this phrase in their first message. */
export const TITLE_REQUEST_PHRASE = "a short title for this project";

export const DEFAULT_TITLE = "Untitled project";

export interface ChatMessage {
  role?: unknown;
  content?: unknown;
}

export type ReplayAnswer =
  | { kind: "reply"; content: string; delayMs: number; turn: number | "title" | "ended" }
  | { kind: "error"; status: number; message: string; turn: number };

/** The text of a message: a string, or the text parts of an OpenAI content array. */
export function messageText(message: ChatMessage): string {
  const { content } = message;
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part: unknown) =>
      part && typeof part === "object" && typeof (part as { text?: unknown }).text === "string"
        ? (part as { text: string }).text
        : "",
    )
    .join("");
}

/** A rough token count, as a real model would report usage: about 4 characters a token. */
export function approximateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

export function isTitleRequest(messages: readonly ChatMessage[]): boolean {
  const first = messages[0];
  return first !== undefined && messageText(first).includes(TITLE_REQUEST_PHRASE);
}

/**
 * Where the script begins in a conversation: at its start, or, for a script
 * with a `prompt`, just after the last user turn carrying that prompt (the
 * prompt may share its turn with a stop notice before it or the answer
 * format after it). Every run sent that prompt thus replays from turn 0,
 * however many runs the project had before.
 */
export function scriptStart(script: Pick<ReplayScript, "prompt">, messages: readonly ChatMessage[]): number {
  const { prompt } = script;
  if (!prompt) return 0;
  const last = messages.findLastIndex((message) => message.role === "user" && messageText(message).includes(prompt));
  return last + 1;
}

/** The index of the script turn a request asks for: one per assistant message since the script began. */
export function turnIndex(script: Pick<ReplayScript, "prompt">, messages: readonly ChatMessage[]): number {
  return messages.slice(scriptStart(script, messages)).filter((message) => message.role === "assistant").length;
}

/** Counts the attempts at each (script, turn), so `errors` fire on the first attempts only. */
export class AttemptCounter {
  private readonly counts = new Map<string, number>();

  /** Records an attempt and returns how many came before it (0 for the first). */
  next(script: string, turn: number): number {
    const key = `${script}\u0000${turn}`;
    const previous = this.counts.get(key) ?? 0;
    this.counts.set(key, previous + 1);
    return previous;
  }

  forget(script: string): void {
    for (const key of this.counts.keys()) if (key.startsWith(`${script}\u0000`)) this.counts.delete(key);
  }
}

export function scriptEndedReply(script: ReplayScript): string {
  return JSON.stringify({
    tool: "reply_to_user",
    message: `The replay script "${script.name}" has ended after ${script.turns.length} turns, so this run stops here. Configure a real model (AGENT_MODEL) to keep building.`,
  });
}

export function planAnswer(
  script: ReplayScript,
  messages: readonly ChatMessage[],
  attempts: AttemptCounter,
): ReplayAnswer {
  if (isTitleRequest(messages)) {
    return { kind: "reply", content: script.title ?? DEFAULT_TITLE, delayMs: 0, turn: "title" };
  }
  const index = turnIndex(script, messages);
  const turn = script.turns[index];
  // Past the end: end the run rather than let an agent loop forever.
  if (!turn) return { kind: "reply", content: scriptEndedReply(script), delayMs: 0, turn: "ended" };

  const errors = turn.errors ?? [];
  const attempt = attempts.next(script.name, index);
  const status = errors[attempt];
  if (status !== undefined) {
    return {
      kind: "error",
      status,
      turn: index,
      message: `Replay script "${script.name}" turn ${index}: injected HTTP ${status} (attempt ${attempt + 1} of ${errors.length} failing).`,
    };
  }
  const content = turn.raw ?? JSON.stringify(turn.reply);
  return { kind: "reply", content, delayMs: turn.delayMs ?? 0, turn: index };
}
