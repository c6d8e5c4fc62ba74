/**
 * What the replay server answers to one chat request: pure, apart from the
 * attempt counters used for error injection. The turn is chosen from the
 * request alone (how many assistant messages it carries since the script
 * began, plus the turns a compaction summary says it stands for), never from
 * server state, so a durable step retried after a crash gets the same reply.
 */
import type { ReplayScript } from "./script";

/** Title requests (BAML's GenerateTitle) carry this phrase in their first message. */
export const TITLE_REQUEST_PHRASE = "a short title for this project";

export const DEFAULT_TITLE = "Untitled project";

/** Compaction requests (BAML's SummarizeSession) carry this phrase in their first message. */
export const SUMMARY_REQUEST_PHRASE = "Summarize the earlier part of this coding session";

/**
 * A compacted conversation opens with a summary that says how many of the model's turns it stands for
 * (inngest/agent/conversation.ts, compactedTurnsMarker): they count as turns taken.
 */
export const COMPACTED_TURNS = /\[(\d+) earlier turns of yours are summarized here/;

export interface ChatMessage {
  role?: unknown;
  content?: unknown;
}

export type ReplayAnswer =
  | {
      kind: "reply";
      content: string;
      delayMs: number;
      turn: number | "title" | "summary" | "ended";
      /** How a streamed reply is cut up and paced (the turn's own; unset, the server's defaults). */
      chunkChars?: number;
      chunkDelayMs?: number;
    }
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

export function isSummaryRequest(messages: readonly ChatMessage[]): boolean {
  const first = messages[0];
  return first !== undefined && messageText(first).includes(SUMMARY_REQUEST_PHRASE);
}

/**
 * The index of the script turn a request asks for: one per assistant message since the script began, plus the
 * turns a compaction summary in those messages stands for.
 */
export function turnIndex(script: Pick<ReplayScript, "prompt">, messages: readonly ChatMessage[]): number {
  let turns = 0;
  for (const message of messages.slice(scriptStart(script, messages))) {
    if (message.role === "assistant") turns++;
    else if (message.role === "user") turns += Number(COMPACTED_TURNS.exec(messageText(message))?.[1] ?? 0);
  }
  return turns;
}

const MAX_DIGEST_ITEMS = 40;

function unique(items: Iterable<string>): string[] {
  return [...new Set(items)].slice(-MAX_DIGEST_ITEMS);
}

/**
 * The stand-in's summary when the script gives none: the facts a summary must keep, gathered mechanically from the
 * request (the files written, the builder's requests) and merged with the summary so far, so they survive any number
 * of compactions while its size stays bounded.
 */
export function summaryDigest(messages: readonly ChatMessage[]): string {
  const text = messages.map(messageText).join("\n");
  const files: string[] = [];
  const asked: string[] = [];
  for (const line of text.split("\n")) {
    const filesLine = /^Files written: (.*)$/.exec(line)?.[1];
    if (filesLine) files.push(...filesLine.split(", ").filter(Boolean));
    const askedLine = /^Builder asked: (.*)$/.exec(line)?.[1];
    if (askedLine) asked.push(askedLine);
  }
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const action = JSON.parse(line) as { tool?: unknown; path?: unknown };
      if (action.tool === "write_file" && typeof action.path === "string") files.push(action.path);
    } catch {
      // Not an action the agent wrote (or not all on one line): not a file written.
    }
  }
  // The builder's turns in the request: what follows a "## The builder, …" heading that is no tool result or note.
  for (const match of text.matchAll(/## The builder, a tool result or a note from Dyno\n+([^\n]+)/g)) {
    const first = match[1]!.trim();
    if (!/^(Result of |Your last reply|\[|\(This action)/.test(first)) asked.push(first.slice(0, 200));
  }
  return [`Files written: ${unique(files.sort()).join(", ")}`, ...unique(asked).map((a) => `Builder asked: ${a}`)].join(
    "\n",
  );
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
  if (isSummaryRequest(messages)) {
    return { kind: "reply", content: script.summary ?? summaryDigest(messages), delayMs: 0, turn: "summary" };
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
  return {
    kind: "reply",
    content,
    delayMs: turn.delayMs ?? 0,
    turn: index,
    ...(turn.chunkChars !== undefined ? { chunkChars: turn.chunkChars } : {}),
    ...(turn.chunkDelayMs !== undefined ? { chunkDelayMs: turn.chunkDelayMs } : {}),
  };
}
