import { describe, expect, it } from "vitest";
import type { AgentEntry } from "../../db/schema";
import { compactedTurnsMarker, MAX_TURN_CHARS, renderConversation, trimResult, verbatimEntries } from "./conversation";

let nextId = 1;
function entry(
  runId: string,
  iteration: number,
  kind: AgentEntry["kind"],
  payload: Record<string, unknown>,
): AgentEntry {
  return { id: nextId++, runId, projectId: "p", iteration, kind, payload, createdAt: new Date() };
}

describe("renderConversation", () => {
  it("joins the builder's steering messages to the result before them: the model's turns stay where they were", () => {
    const turns = renderConversation([
      entry("r1", 0, "user", { prompt: "Build a page" }),
      entry("r1", 1, "action", { action: { tool: "run_command", command: "sleep 5" } }),
      entry("r1", 1, "result", { tool: "run_command", ok: true, content: "$ sleep 5" }),
      entry("r1", 2, "steer", {
        messages: [
          { id: "a", content: "Make it blue." },
          { id: "b", content: "And big." },
        ],
      }),
      entry("r1", 2, "reply", { message: "Done." }),
    ]);
    expect(turns.map((t) => t.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(turns[2]!.content).toBe(
      "Result of run_command:\n$ sleep 5\n\nThe builder added, while you were working:\n\nMake it blue.\n\nAnd big.",
    );
  });

  it("renders prompt, actions, results and the reply as alternating turns", () => {
    const turns = renderConversation([
      entry("r1", 0, "user", { prompt: "Build a page" }),
      entry("r1", 1, "action", { action: { tool: "write_file", path: "a.html", content: "<p>" } }),
      entry("r1", 1, "result", { tool: "write_file", ok: true, content: "Created a.html (3 bytes)." }),
      entry("r1", 2, "action", { action: { tool: "run_command", command: "false" } }),
      entry("r1", 2, "result", { tool: "run_command", ok: false, content: "$ false\n(exited with code 1)" }),
      entry("r1", 3, "reply", { message: "Done." }),
    ]);
    expect(turns.map((t) => t.role)).toEqual(["user", "assistant", "user", "assistant", "user", "assistant"]);
    expect(turns[1]!.content).toBe('{"tool":"write_file","path":"a.html","content":"<p>"}');
    expect(turns[2]!.content).toBe("Result of write_file:\nCreated a.html (3 bytes).");
    expect(turns[4]!.content).toMatch(/^Result of run_command \(failed\):/);
    expect(JSON.parse(turns[5]!.content)).toEqual({ tool: "reply_to_user", message: "Done." });
  });

  it("shows unusable output as the model wrote it, followed by what was wrong", () => {
    const turns = renderConversation([
      entry("r1", 0, "user", { prompt: "go" }),
      entry("r1", 1, "action", { problem: "unparseable", raw: "Sure thing!" }),
      entry("r1", 1, "result", { problem: "unparseable", ok: false, content: "Reply with one JSON object." }),
    ]);
    expect(turns.map((t) => t.content)).toEqual([
      "go",
      "Sure thing!",
      "Your last reply could not be used: Reply with one JSON object.",
    ]);
  });

  it("tells the model about a stop and an action that never ran, merged into the next user turn", () => {
    const turns = renderConversation([
      entry("r1", 0, "user", { prompt: "first" }),
      entry("r1", 1, "action", { action: { tool: "run_command", command: "sleep 100" } }),
      entry("r1", 1, "stopped", { message: "[The builder stopped that run.]" }),
      entry("r2", 0, "user", { prompt: "second" }),
    ]);
    expect(turns.map((t) => t.role)).toEqual(["user", "assistant", "user"]);
    expect(turns[2]!.content).toBe(
      "(This action did not run: the run ended before it.)\n\n[The builder stopped that run.]\n\nsecond",
    );
  });

  it("caps a huge turn, keeping its start and end", () => {
    const huge = `start${"x".repeat(100_000)}end`;
    const [turn] = renderConversation([entry("r1", 0, "user", { prompt: huge })]);
    expect(turn!.content.length).toBeLessThan(MAX_TURN_CHARS + 100);
    expect(turn!.content.startsWith("start")).toBe(true);
    expect(turn!.content.endsWith("end")).toBe(true);
    expect(turn!.content).toMatch(/characters omitted/);
  });

  it("sends the latest summary in place of the entries it covers, saying how many turns it stands for", () => {
    const prompt = entry("r1", 0, "user", { prompt: "Build a recipe box" });
    const a1 = entry("r1", 1, "action", { action: { tool: "write_file", path: "a.html", content: "<p>" } });
    const r1 = entry("r1", 1, "result", { tool: "write_file", ok: true, content: "Created a.html" });
    const a2 = entry("r1", 2, "action", { action: { tool: "read_file", path: "a.html" } });
    const r2 = entry("r1", 2, "result", { tool: "read_file", ok: true, content: "<p>" });
    const old = entry("r1", 2, "summary", { summary: "older", coversThrough: prompt.id, summarizedTurns: 0 });
    const summary = entry("r1", 3, "summary", { summary: "Built a.html.", coversThrough: r1.id, summarizedTurns: 1 });
    const a3 = entry("r1", 3, "action", { action: { tool: "list_files" } });
    const entries = [prompt, a1, r1, a2, r2, old, summary, a3];
    expect(verbatimEntries(entries)).toEqual([a2, r2, a3]);
    const turns = renderConversation(entries);
    expect(turns.map((t) => t.role)).toEqual(["user", "assistant", "user", "assistant", "user"]);
    expect(turns[0]!.content).toBe(`${compactedTurnsMarker(1)}\n\nBuilt a.html.`);
    expect(turns[0]!.content).toMatch(/^\[1 earlier turns of yours are summarized here/);
    expect(turns[1]!.content).toBe('{"tool":"read_file","path":"a.html"}');
  });

  it("sends a note from Dyno as part of the next user turn", () => {
    const turns = renderConversation([
      entry("r1", 0, "user", { prompt: "go" }),
      entry("r1", 1, "action", { action: { tool: "run_command", command: "false" } }),
      entry("r1", 1, "result", { tool: "run_command", ok: false, content: "exit 1" }),
      entry("r1", 2, "note", { message: "[Note from Dyno: stop repeating.]" }),
    ]);
    expect(turns.at(-1)!.content).toBe("Result of run_command (failed):\nexit 1\n\n[Note from Dyno: stop repeating.]");
  });

  it("trims the results it is told to, keeping their start and end", () => {
    const long = `head${"y".repeat(5_000)}tail`;
    const result = entry("r1", 1, "result", { tool: "read_file", ok: true, content: long });
    const entries = [
      entry("r1", 0, "user", { prompt: "go" }),
      entry("r1", 1, "action", { action: { tool: "read_file", path: "x" } }),
      result,
    ];
    expect(renderConversation(entries).at(-1)!.content).toContain(long);
    const trimmed = renderConversation(entries, { trimmed: new Set([result.id]) }).at(-1)!.content;
    expect(trimmed).toBe(`Result of read_file:\n${trimResult(long)}`);
    expect(trimmed.length).toBeLessThan(1_000);
    expect(trimmed).toMatch(/^Result of read_file:\nhead/);
    expect(trimmed).toMatch(/tail$/);
    expect(trimResult("short")).toBe("short");
  });
});
