/**
 * Whole runs through the real engine, the real BAML client, the local
 * sandbox and the replay stand-in: the app's chat logic sends `agent/prompt`,
 * the engine drives think/act steps through /api/inngest, and the files,
 * transcript, conversation and progress rows it leaves are checked.
 */
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, messages, projects, runEvents, runs } from "../../db/schema";
import { engineRunsForPrompt } from "../support/engine-api";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;
let replay: ReplayServer;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack();
  replay = stack.replay;
  app = await import("../../app/models/runs.server");
  console.log(`[agent-run] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

const eventsOf = (runId: string) =>
  stack.database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.id));

describe("a build run from a scripted session", () => {
  it("writes the files, records the transcript, conversation and progress in order, names the project and counts tokens", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db, { title: "Untitled project" });
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Build a page that greets me", mode: "build" },
      model: "openai-compatible/greeting-page",
    });

    const last = await waitForRunToFinish(stack.database, run, 60_000);
    expect(last.type).toBe("complete");

    // The files, with the content the script wrote (greet.js came in as "/src/../greet.js").
    const workspace = stack.workspace(project.id);
    expect(readFileSync(path.join(workspace, "index.html"), "utf8")).toContain('<h1 id="greeting">Hello</h1>');
    expect(readFileSync(path.join(workspace, "greet.js"), "utf8")).toContain("Hello, builder!");
    expect(readFileSync(path.join(workspace, "lines.txt"), "utf8")).toMatch(/4 index\.html[\s\S]*1 greet\.js/);

    // Progress: every state change, in order, each written once.
    const rows = await eventsOf(run.id);
    const step = (i: number, ...types: string[]) => ["thinking", ...types].map((t) => `${t}:${i}`);
    expect(rows.map((r) => (typeof r.data.iteration === "number" ? `${r.type}:${r.data.iteration}` : r.type))).toEqual([
      "queued",
      "starting",
      // The files before the run (the first version), then one per step that changed files, then the run's end.
      "version:0",
      "title",
      ...step(1, "tool_call", "tool_result", "todos"),
      ...step(2, "tool_call", "tool_result", "files_changed", "version"),
      ...step(3, "tool_call", "tool_result", "files_changed", "version"),
      ...step(4, "tool_call", "tool_result", "files_changed", "version"),
      ...step(5, "tool_call", "tool_result"),
      ...step(6, "tool_call", "tool_result", "todos"),
      ...step(7, "reply"),
      "version:0",
      "complete",
    ]);
    expect(rows.map((r) => r.writes)).toEqual(rows.map(() => 1));
    const ids = rows.map((r) => r.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(rows.find((r) => r.type === "tool_call" && r.data.iteration === 4)!.data).toMatchObject({
      tool: "run_command",
      description: expect.stringMatching(/^Run `node --check greet\.js/),
    });
    expect(rows.find((r) => r.type === "tool_result" && r.data.iteration === 4)!.data).toMatchObject({
      ok: true,
      summary: "Exit code 0",
    });
    expect(rows.find((r) => r.type === "files_changed" && r.data.iteration === 4)!.data.files).toEqual(["lines.txt"]);
    expect(rows.find((r) => r.type === "starting")!.data).toMatchObject({
      model: "openai-compatible/greeting-page",
      replay: false,
    });

    // The snapshot the UI reads.
    const [finished] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(finished).toMatchObject({ status: "complete", iteration: 7, error: null, currentTool: null });
    expect(finished!.modifiedFiles).toEqual(["greet.js", "index.html", "lines.txt"]);
    expect(finished!.todos.map((t) => t.status)).toEqual(["completed", "completed", "completed"]);

    // Usage: every model call (title and seven turns) counted, once.
    const entries = await db
      .select()
      .from(agentEntries)
      .where(eq(agentEntries.runId, run.id))
      .orderBy(asc(agentEntries.id));
    const usages = entries
      .map((e) => e.payload.usage as { inputTokens: number; outputTokens: number } | undefined)
      .filter(Boolean);
    expect(usages).toHaveLength(8);
    expect(usages.every((u) => u!.inputTokens > 0 && u!.outputTokens > 0)).toBe(true);
    expect(finished!.inputTokens).toBe(usages.reduce((sum, u) => sum + u!.inputTokens, 0));
    expect(finished!.outputTokens).toBe(usages.reduce((sum, u) => sum + u!.outputTokens, 0));

    // The conversation: prompt, then an action and its result per tool step, then the reply.
    expect(entries.map((e) => `${e.kind}:${e.iteration}`)).toEqual([
      "user:0",
      ...[1, 2, 3, 4, 5, 6].flatMap((i) => [`action:${i}`, `result:${i}`]),
      "reply:7",
    ]);
    const lines = entries.find((e) => e.kind === "result" && e.iteration === 5)!;
    expect(lines.payload.content).toMatch(/4 index\.html/);

    // The transcript and the title.
    const transcript = await db
      .select()
      .from(messages)
      .where(eq(messages.runId, run.id))
      .orderBy(asc(messages.createdAt));
    expect(transcript.map((m) => [m.role, m.content])).toEqual([
      ["user", "Build a page that greets me"],
      ["assistant", "Built a **greeting page**: `index.html` loads `greet.js`, which greets the builder."],
    ]);
    const [named] = await db.select().from(projects).where(eq(projects.id, project.id));
    expect(named!.title).toBe("Greeting page");
    expect(named).toMatchObject({ sandboxProvider: "local", sandboxId: project.id });

    expect((await engineRunsForPrompt(stack.engine.url, run.id)).map((r) => r.status)).toEqual(["Completed"]);
  });

  it("continues the project's conversation in the next prompt, in the same sandbox, without renaming it", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db, { title: "Untitled project" });
    const model = scripted(
      replay,
      [
        turn.write("notes.txt", "first\n"),
        turn.reply("Wrote notes."),
        turn.read("notes.txt"),
        turn.reply("It says first."),
      ],
      {
        title: "Notes",
      },
    );
    const first = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "write notes" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, first)).type).toBe("complete");
    const second = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "what do they say?", mode: "ask" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, second)).type).toBe("complete");

    // The stand-in answers by how many assistant turns it is sent: the second run got turns 3 and 4,
    // so the model saw the first run's conversation.
    const reply = await db.select().from(messages).where(eq(messages.runId, second.id));
    expect(reply.find((m) => m.role === "assistant")!.content).toBe("It says first.");
    const read = (await db.select().from(agentEntries).where(eq(agentEntries.runId, second.id))).find(
      (e) => e.kind === "result",
    );
    expect(read!.payload.content).toContain("first");
    expect((await eventsOf(second.id)).map((r) => r.type)).not.toContain("title");
    const [named] = await db.select().from(projects).where(eq(projects.id, project.id));
    expect(named!.title).toBe("Notes");
  });

  it("runs the bundled offline demo as a labelled replay that builds a todo page", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db, { title: "Untitled project" });
    const run = await app.startDemoRun(db, { userId: user.id, projectId: project.id });
    expect(run.model).toBe("replay/todo-page");
    const last = await waitForRunToFinish(stack.database, run, 60_000);
    expect(last.type).toBe("complete");
    const workspace = stack.workspace(project.id);
    for (const file of ["index.html", "style.css", "app.js"]) expect(existsSync(path.join(workspace, file))).toBe(true);
    expect(readFileSync(path.join(workspace, "app.js"), "utf8")).toMatch(/localStorage/);
    const rows = await eventsOf(run.id);
    expect(rows.find((r) => r.type === "starting")!.data).toMatchObject({ replay: true, model: "replay/todo-page" });
    const [named] = await db.select().from(projects).where(eq(projects.id, project.id));
    expect(named!.title).not.toBe("Untitled project");
  });

  it("runs two prompts on one project one after the other, never side by side", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.run("echo one >> order.txt", { delayMs: 100 }),
      turn.reply("one done"),
      turn.run("echo two >> order.txt", { delayMs: 100 }),
      turn.reply("two done"),
    ]);
    const [first, second] = await Promise.all([
      app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "one" }, model }),
      app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "two" }, model }),
    ]);
    for (const run of [first, second]) expect((await waitForRunToFinish(stack.database, run)).type).toBe("complete");

    // Between one run's `starting` and its `complete`, no row of the other run.
    const rows = await db
      .select()
      .from(runEvents)
      .where(eq(runEvents.projectId, project.id))
      .orderBy(asc(runEvents.id));
    const order = rows.filter((r) => r.type !== "queued").map((r) => r.runId);
    const switchAt = order.findIndex((id) => id !== order[0]);
    expect(rows.filter((r) => r.type !== "queued")[switchAt - 1]!.type).toBe("complete");
    expect(order.slice(switchAt).every((id) => id !== order[0])).toBe(true);
    const [a, b] = await Promise.all(
      [first, second].map(async (r) => (await db.select().from(runs).where(eq(runs.id, r.id)))[0]!),
    );
    const [earlier, later] = a!.startedAt! < b!.startedAt! ? [a!, b!] : [b!, a!];
    expect(later.startedAt!.getTime()).toBeGreaterThanOrEqual(earlier.finishedAt!.getTime());
    expect(readFileSync(path.join(stack.workspace(project.id), "order.txt"), "utf8")).toBe("one\ntwo\n");
  });
});

describe("prompts the app refuses", () => {
  it("refuses a prompt for someone else's project and records nothing", async () => {
    const { db } = stack.database;
    const owner = await createBuilder(db);
    const stranger = await createBuilder(db);
    await expect(
      app.startRun(db, {
        userId: stranger.user.id,
        projectId: owner.project.id,
        input: { prompt: "mine now" },
        model: "replay/todo-page",
      }),
    ).rejects.toThrow(/not found/i);
    expect(await db.select().from(runs).where(eq(runs.projectId, owner.project.id))).toHaveLength(0);
  });

  it("refuses an empty or oversized prompt with a clear message", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const ids = { userId: user.id, projectId: project.id, model: "replay/todo-page" };
    await expect(app.startRun(db, { ...ids, input: { prompt: "   " } })).rejects.toThrow(/Write a prompt first/);
    await expect(app.startRun(db, { ...ids, input: { prompt: "x".repeat(20_001) } })).rejects.toThrow(
      /limited to 20,000 characters/,
    );
    expect(await db.select().from(runs).where(eq(runs.projectId, project.id))).toHaveLength(0);
  });

  it("refuses a real prompt at once when no model is configured, naming the variables to set", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    // AGENT_MODEL is not set in this stack.
    const refused = app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "build it" } });
    await expect(refused).rejects.toBeInstanceOf(app.ModelNotConfiguredError);
    await expect(refused).rejects.toThrow(
      /AGENT_MODEL[\s\S]*OPENAI_API_KEY[\s\S]*ANTHROPIC_API_KEY[\s\S]*AGENT_BASE_URL/,
    );
    expect(await db.select().from(runs).where(eq(runs.projectId, project.id))).toHaveLength(0);
  });
});
