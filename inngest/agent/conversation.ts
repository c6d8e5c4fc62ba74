/**
 * Turns a project's agent_entries into the alternating user/assistant turns
 * the model reads. Pure: the same entries always render the same turns, so a
 * think step retried after a crash asks the model the same question (and the
 * replay stand-in, which counts assistant turns, gives the same answer).
 */
import type { AgentEntry } from "../../db/schema";

export interface ConversationTurn {
  role: "user" | "assistant";
  content: string;
}

/** A single turn never carries more than this; tool output is capped before it gets here too. */
export const MAX_TURN_CHARS = 24_000;

function cap(text: string): string {
  if (text.length <= MAX_TURN_CHARS) return text;
  const omitted = text.length - MAX_TURN_CHARS;
  return `${text.slice(0, MAX_TURN_CHARS / 2)}\n[… ${omitted} characters omitted …]\n${text.slice(-MAX_TURN_CHARS / 2)}`;
}

function str(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value ?? null);
}

function render(entry: AgentEntry): ConversationTurn {
  const p = entry.payload;
  switch (entry.kind) {
    case "user":
      return { role: "user", content: str(p.prompt) };
    case "action":
      // Unusable output is shown back as the model wrote it, then the error as the result.
      return { role: "assistant", content: p.problem ? str(p.raw) : JSON.stringify(p.action) };
    case "result":
      return p.problem
        ? { role: "user", content: `Your last reply could not be used: ${str(p.content)}` }
        : { role: "user", content: `Result of ${str(p.tool)}${p.ok ? "" : " (failed)"}:\n${str(p.content)}` };
    case "reply":
      return { role: "assistant", content: JSON.stringify({ tool: "reply_to_user", message: p.message }) };
    case "stopped":
    case "restored":
      return { role: "user", content: str(p.message) };
  }
}

export function renderConversation(entries: readonly AgentEntry[]): ConversationTurn[] {
  const turns: ConversationTurn[] = [];
  entries.forEach((entry, index) => {
    const turn = render(entry);
    const previous = turns.at(-1);
    if (previous?.role === "user" && turn.role === "user") {
      // Models expect turns to alternate: a stop notice followed by the next prompt is one user turn.
      previous.content = `${previous.content}\n\n${turn.content}`;
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
