/**
 * Turns a project's agent_entries into the alternating user/assistant turns
 * the model reads. Pure: the same entries always render the same turns, so a
 * think step retried after a crash asks the model the same question (and the
 * replay stand-in, which counts assistant turns, gives the same answer).
 *
 * Once the conversation has been compacted (compaction.ts), the latest
 * summary entry stands in for every entry up to the one it covers; the
 * entries stay in Postgres, they are only no longer sent.
 */
import type { AgentEntry } from "../../db/schema";
import type { PromptImageRef } from "./model/vision";

export interface ConversationTurn {
  role: "user" | "assistant";
  content: string;
  /**
   * The images of the prompts in this turn (decision 036), by reference: model/vision.ts loads the bytes of the
   * newest ones just before the model is asked and names the rest. The content names every one of them too, so a
   * summary or a model without vision still knows they were there.
   */
  images?: PromptImageRef[];
}

/** The images a prompt entry carries (its payload's `images`), well-formed ones only. */
export function entryImages(entry: AgentEntry): PromptImageRef[] {
  const images = entry.kind === "user" ? entry.payload.images : undefined;
  if (!Array.isArray(images)) return [];
  return images.filter(
    (image): image is PromptImageRef =>
      !!image && typeof image === "object" && typeof (image as PromptImageRef).id === "string",
  );
}

function sizeText(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${+(bytes / 1024 / 1024).toFixed(1)} MiB`
    : `${Math.max(1, Math.round(bytes / 1024))} KiB`;
}

/** The line that names a prompt's images in its text (what a summary and a model without vision read). */
export function imagesMention(images: readonly PromptImageRef[]): string {
  const list = images.map((image) => `${image.name} (${image.mediaType}, ${sizeText(image.size)})`).join(", ");
  return `[The builder attached ${images.length === 1 ? "an image" : `${images.length} images`}: ${list}]`;
}

/** A single turn never carries more than this; tool output is capped before it gets here too. */
export const MAX_TURN_CHARS = 24_000;

function cap(text: string): string {
  if (text.length <= MAX_TURN_CHARS) return text;
  const omitted = text.length - MAX_TURN_CHARS;
  return `${text.slice(0, MAX_TURN_CHARS / 2)}\n[… ${omitted} characters omitted …]\n${text.slice(-MAX_TURN_CHARS / 2)}`;
}

/**
 * Opens the summary turn. It says how many assistant turns the summary stands for, so the count of the model's turns
 * survives compaction (the replay stand-in, model-replay/answer.ts, reads it to pick its next scripted turn).
 */
export function compactedTurnsMarker(turns: number): string {
  return `[${turns} earlier turns of yours are summarized here; Dyno keeps the full history.]`;
}

/** An older tool result cut to its start and end when the conversation is over its budget. */
export const TRIMMED_RESULT_CHARS = 600;

export function trimResult(text: string): string {
  if (text.length <= TRIMMED_RESULT_CHARS + 200) return text;
  const omitted = text.length - TRIMMED_RESULT_CHARS;
  return (
    `${text.slice(0, TRIMMED_RESULT_CHARS / 2)}\n[… ${omitted} characters of this older result trimmed; ` +
    `run the command or read the file again if you need them …]\n${text.slice(-TRIMMED_RESULT_CHARS / 2)}`
  );
}

export interface RenderOptions {
  /** Ids of result entries to send trimmed (trimResult). */
  trimmed?: ReadonlySet<number>;
}

/** How the model reads the messages the builder sent while it worked (a steer entry, inngest/agent/steering.ts). */
export function steerTurn(messages: readonly string[]): string {
  return ["The builder added, while you were working:", ...messages.map((message) => message.trim())].join("\n\n");
}

function str(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value ?? null);
}

function render(entry: AgentEntry, options: RenderOptions): ConversationTurn {
  const p = entry.payload;
  switch (entry.kind) {
    case "user": {
      const images = entryImages(entry);
      return images.length
        ? { role: "user", content: `${str(p.prompt)}\n\n${imagesMention(images)}`, images }
        : { role: "user", content: str(p.prompt) };
    }
    case "action":
      // Unusable output is shown back as the model wrote it, then the error as the result.
      return { role: "assistant", content: p.problem ? str(p.raw) : JSON.stringify(p.action) };
    case "result":
      return p.problem
        ? { role: "user", content: `Your last reply could not be used: ${str(p.content)}` }
        : {
            role: "user",
            content: `Result of ${str(p.tool)}${p.ok ? "" : " (failed)"}:\n${
              options.trimmed?.has(entry.id) ? trimResult(str(p.content)) : str(p.content)
            }`,
          };
    case "reply":
      return { role: "assistant", content: JSON.stringify({ tool: "reply_to_user", message: p.message }) };
    case "stopped":
    case "note":
    case "restored":
      return { role: "user", content: str(p.message) };
    case "steer": {
      // A user turn: it joins the result before it, so the count of assistant turns (the replay's script) is unchanged.
      const sent = Array.isArray(p.messages) ? (p.messages as Array<{ content?: unknown }>) : [];
      return { role: "user", content: steerTurn(sent.map((m) => str(m.content))) };
    }
    case "summary":
      return { role: "user", content: `${compactedTurnsMarker(Number(p.summarizedTurns) || 0)}\n\n${str(p.summary)}` };
  }
}

/** The project's latest summary, if its conversation was compacted. */
export function latestSummary(entries: readonly AgentEntry[]): AgentEntry | undefined {
  return entries.findLast((entry) => entry.kind === "summary");
}

/** The entries sent verbatim: those after what the latest summary covers, without the summaries themselves. */
export function verbatimEntries(entries: readonly AgentEntry[]): AgentEntry[] {
  const summary = latestSummary(entries);
  const covered = summary ? entries.findIndex((entry) => entry.id === summary.payload.coversThrough) : -1;
  return entries.slice(covered + 1).filter((entry) => entry.kind !== "summary");
}

/** How many assistant turns these entries render to (one per action or reply). */
export function assistantTurnsIn(entries: readonly AgentEntry[]): number {
  return entries.filter((entry) => entry.kind === "action" || entry.kind === "reply").length;
}

/** The turns the model reads: the latest summary (if any), then the entries after it. */
export function renderConversation(entries: readonly AgentEntry[], options: RenderOptions = {}): ConversationTurn[] {
  const summary = latestSummary(entries);
  return renderEntries(summary ? [summary, ...verbatimEntries(entries)] : entries, options);
}

/** Renders these entries as they are (no summary lookup): the compaction step renders the part it summarizes. */
export function renderEntries(entries: readonly AgentEntry[], options: RenderOptions = {}): ConversationTurn[] {
  const turns: ConversationTurn[] = [];
  entries.forEach((entry, index) => {
    const turn = render(entry, options);
    const previous = turns.at(-1);
    if (previous?.role === "user" && turn.role === "user") {
      // Models expect turns to alternate: a stop notice followed by the next prompt is one user turn.
      previous.content = `${previous.content}\n\n${turn.content}`;
      if (turn.images?.length) previous.images = [...(previous.images ?? []), ...turn.images];
    } else {
      turns.push({ ...turn });
    }
    const next = entries[index + 1];
    const actionWithoutResult =
      entry.kind === "action" &&
      !(next && next.kind === "result" && next.runId === entry.runId && next.iteration === entry.iteration);
    if (actionWithoutResult) {
      turns.push({ role: "user", content: "(This action did not run: the run ended before it.)" });
    }
  });
  return turns.map((turn) => ({ ...turn, content: cap(turn.content) }));
}
