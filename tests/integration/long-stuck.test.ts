/**
 * Stuck detection, end to end: a scripted agent that runs the same failing
 * command again and again is told so in its next turn, then, as it goes on,
 * its run ends failed with a reason the builder reads; an agent that runs
 * the same check after each edit is left alone.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, messages, runEvents, runs } from "../../db/schema";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack();
  app = await import("../../app/models/runs.server");
});

afterAll(async () => {
  await stack?.stop();
});

const eventsOf = (runId: string) =>
  stack.database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.id));

async function runScript(turns: Parameters<typeof scripted>[1]) {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  const model = scripted(stack.replay, turns);
  const promptsBefore = stack.replay.recentPrompts.length;
  const run = await app.startRun(db, {
    userId: user.id,
    projectId: project.id,
    input: { prompt: "Show me what is in notes.txt", mode: "build" },
    model,
  });
  const last = await waitForRunToFinish(stack.database, run, 60_000);
  return { run, last, prompts: () => stack.replay.recentPrompts.slice(promptsBefore) };
}

describe("an agent going round in circles", () => {
  it("is told plainly in its next turn, then its run stops with the reason", async () => {
    const { run, last, prompts } = await runScript([
      ...Array.from({ length: 8 }, () => turn.run("cat notes.txt")),
      turn.reply("Never reached."),
    ]);
    expect(last.type).toBe("failed");
    expect(last.data.error).toMatch(
      /^The agent seemed stuck and was stopped: it ran `cat notes.txt` 5 times in a row with the same result, and went on after it was told\./,
    );

    const events = await eventsOf(run.id);
    const warnings = events.filter((e) => e.type === "stuck_warning");
    expect(warnings.map((e) => [e.data.iteration, e.data.pattern, e.data.repeats])).toEqual([
      [4, "repeated_action", 3],
      [5, "repeated_action", 4],
    ]);
    // It stopped at a step boundary: five commands ran, the sixth was never asked for.
    expect(events.filter((e) => e.type === "tool_result")).toHaveLength(5);
    const [row] = await stack.database.db.select().from(runs).where(eq(runs.id, run.id));
    expect(row).toMatchObject({ status: "failed", currentTool: null });

    // The model read the note with the result it kept getting.
    const noted = prompts().filter((p) => p.includes("[Note from Dyno: you are going round in circles."));
    expect(noted.length).toBeGreaterThanOrEqual(2);
    expect(noted[0]).toMatch(/You ran `cat notes\.txt` 3 times in a row with the same result\./);
    const notes = await stack.database.db.select().from(agentEntries).where(eq(agentEntries.runId, run.id));
    expect(notes.filter((e) => e.kind === "note").map((e) => e.iteration)).toEqual([4, 5]);

    // The transcript says why, as for any failed run.
    const transcript = await stack.database.db.select().from(messages).where(eq(messages.runId, run.id));
    expect(transcript.find((m) => m.role === "system")?.content).toMatch(/^The run failed: The agent seemed stuck/);
  });

  it("leaves alone an agent that runs the same check after each edit", async () => {
    const check = () => turn.run("grep -q done notes.txt");
    const { run, last } = await runScript([
      turn.write("notes.txt", "draft 1\n"),
      check(),
      turn.write("notes.txt", "draft 2\n"),
      check(),
      turn.write("notes.txt", "draft 3\n"),
      check(),
      turn.write("notes.txt", "draft 4\n"),
      check(),
      turn.write("notes.txt", "done\n"),
      check(),
      turn.reply("notes.txt is done."),
    ]);
    expect(last.type).toBe("complete");
    const events = await eventsOf(run.id);
    expect(events.filter((e) => e.type === "stuck_warning")).toEqual([]);
    expect(events.filter((e) => e.type === "tool_result").map((e) => e.data.ok)).toEqual([
      ...[1, 2, 3, 4].flatMap(() => [true, false]),
      true,
      true,
    ]);
  });
});
