/**
 * The step bodies on their own (no engine): each is safe to run twice, as
 * the engine does after a crash. A re-run think does not ask the model
 * again; a re-run act does not repeat a tool whose result was saved.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnv } from "../../app/env.server";
import { agentEntries, runEvents, runs, versions } from "../../db/schema";
import { startReplayServer } from "../../model-replay/server";
import { closeEgressProxies } from "../../sandbox";
import { createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder } from "../../tests/support/fixtures";
import { markRunStopping } from "../run-lifecycle";
import { createAgentContext, type AgentContext } from "./context";
import { saveEntry } from "./entries";
import { act, startAgentRun, think } from "./steps";

let t: TestDatabase;
let replay: Awaited<ReturnType<typeof startReplayServer>>;
let agent: AgentContext;
let dataDir: string;

beforeAll(async () => {
  t = await createTestDatabase();
  replay = await startReplayServer({
    scripts: [
      {
        name: "append",
        turns: [
          { reply: { tool: "run_command", command: "echo line >> log.txt" } },
          { reply: { tool: "reply_to_user", message: "done" } },
        ],
      },
      {
        name: "watch",
        turns: [
          { reply: { tool: "run_command", command: "true" } },
          { reply: { tool: "run_command", command: "true" } },
          { reply: { tool: "reply_to_user", message: "done" } },
        ],
      },
      {
        name: "blocked",
        turns: [
          { reply: { tool: "run_command", command: "curl -sS -m 10 https://example.com/ -o /dev/null" } },
          { reply: { tool: "reply_to_user", message: "done" } },
        ],
      },
    ],
    port: 0,
  });
  dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-steps-"));
  agent = createAgentContext(
    parseEnv({ DYNO_DATA_DIR: dataDir, AGENT_BASE_URL: replay.url, BAML_LOG: "error" }),
    t.database,
  );
});

afterAll(async () => {
  await closeEgressProxies();
  await replay?.close();
  await t?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function newRun(model = "openai-compatible/append") {
  const { db } = t.database;
  const { user, project } = await createBuilder(db);
  const [run] = await db
    .insert(runs)
    .values({
      userId: user.id,
      projectId: project.id,
      prompt: "append a line",
      model,
      maxIterations: 5,
    })
    .returning();
  await saveEntry(db, {
    runId: run!.id,
    projectId: project.id,
    iteration: 0,
    kind: "user",
    payload: { prompt: "append a line" },
  });
  return { run: await startAgentRun(agent, run!.id), project };
}

/** The result entries saved for a run's steps. */
const savedResults = (runId: string) =>
  t.database.db
    .select()
    .from(agentEntries)
    .where(and(eq(agentEntries.runId, runId), eq(agentEntries.kind, "result")));

describe("step bodies run twice", () => {
  it("think asks the model once and act runs the tool once", async () => {
    const { db } = t.database;
    const { run, project } = await newRun();

    const before = replay.requests;
    expect(await think(agent, run, 1)).toEqual({ next: "act" });
    expect(replay.requests).toBe(before + 1);
    expect(await think(agent, run, 1)).toEqual({ next: "act" });
    expect(replay.requests).toBe(before + 1);

    expect(await act(agent, run, 1)).toEqual({ next: "think" });
    expect(await act(agent, run, 1)).toEqual({ next: "think" });
    expect(readFileSync(path.join(dataDir, "workspaces", project.id, "log.txt"), "utf8")).toBe("line\n");

    expect(await savedResults(run.id)).toHaveLength(1);
    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(rows.filter((r) => r.type === "tool_result").map((r) => r.writes)).toEqual([1]);
  });

  it("act takes its step's version once, and a re-run after a crash between the result and the version takes it then", async () => {
    const { db } = t.database;
    const { run, project } = await newRun();
    // startAgentRun took the first version (the empty workspace, before the run).
    expect((await db.select().from(versions).where(eq(versions.runId, run.id))).map((v) => v.kind)).toEqual([
      "run-start",
    ]);
    expect(await think(agent, run, 1)).toEqual({ next: "act" });
    expect(await act(agent, run, 1)).toEqual({ next: "think" });
    expect(await act(agent, run, 1)).toEqual({ next: "think" });
    const steps = () =>
      db
        .select()
        .from(versions)
        .where(and(eq(versions.runId, run.id), eq(versions.kind, "step")));
    const [taken] = await steps();
    expect(await steps()).toHaveLength(1);
    expect(taken).toMatchObject({ iteration: 1, tool: "run_command", filesAdded: 1, number: 2, projectId: project.id });

    // As if the app died after the result was saved, before the version was: the retried step takes it.
    await db.delete(versions).where(eq(versions.id, taken!.id));
    await db.delete(runEvents).where(and(eq(runEvents.runId, run.id), eq(runEvents.type, "version")));
    expect(await act(agent, run, 1)).toEqual({ next: "think" });
    const [again] = await steps();
    expect(again).toMatchObject({ iteration: 1, number: 2, treeSha: taken!.treeSha, filesAdded: 1 });
    expect(readFileSync(path.join(dataDir, "workspaces", project.id, "log.txt"), "utf8")).toBe("line\n");
    const events = await db
      .select()
      .from(runEvents)
      .where(and(eq(runEvents.runId, run.id), eq(runEvents.type, "version")));
    expect(events.map((e) => [e.data.versionId, e.writes])).toEqual([[again!.id, 1]]);
  });

  it("act saves its version with its result; when the two cannot be saved together, the result alone, then the version", async () => {
    const { db } = t.database;
    const { run, project } = await newRun();
    expect(await think(agent, run, 1)).toEqual({ next: "act" });
    // The first take fails with an error that is not the history's (so it fails the transaction), the next works.
    let failures = 1;
    const failingOnce: AgentContext = {
      ...agent,
      history: (projectId) => {
        const history = agent.history(projectId);
        if (!history) return null;
        return Object.create(history, {
          take: {
            value: (...args: Parameters<typeof history.take>) => {
              if (failures-- > 0) return Promise.reject(new Error("the database went away mid-take"));
              return history.take(...args);
            },
          },
        }) as typeof history;
      },
    };
    expect(await act(failingOnce, run, 1)).toEqual({ next: "think" });
    expect(failures).toBe(-1);
    // The tool ran once, its result is saved once, and the version was taken after it, once.
    expect(readFileSync(path.join(dataDir, "workspaces", project.id, "log.txt"), "utf8")).toBe("line\n");
    expect(await savedResults(run.id)).toHaveLength(1);
    const steps = await db
      .select()
      .from(versions)
      .where(and(eq(versions.runId, run.id), eq(versions.kind, "step")));
    expect(steps).toMatchObject([{ iteration: 1, tool: "run_command", filesAdded: 1 }]);
    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(events.filter((e) => e.type === "tool_result")).toHaveLength(1);
    const stepEvents = events.filter((e) => e.type === "version" && e.data.kind === "step");
    expect(stepEvents.map((e) => [e.data.versionId, e.writes])).toEqual([[steps[0]!.id, 1]]);
  });

  it("act records the connections the sandbox refused as one run event, beside the tool result", async () => {
    const { db } = t.database;
    const { run } = await newRun("openai-compatible/blocked");
    expect(await think(agent, run, 1)).toEqual({ next: "act" });
    expect(await act(agent, run, 1)).toEqual({ next: "think" });
    expect(await act(agent, run, 1)).toEqual({ next: "think" });
    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    const refused = rows.filter((r) => r.type === "egress_refused");
    expect(refused).toHaveLength(1);
    expect(refused[0]!.data).toMatchObject({
      iteration: 1,
      tool: "run_command",
      refused: [{ host: "example.com", port: 443, reason: "not on the allow-list" }],
    });
    const result = rows.find((r) => r.type === "tool_result");
    expect(result!.data).toMatchObject({
      ok: false,
      summary: expect.stringMatching(/refused example.com:443/),
      output: expect.stringMatching(
        /may only reach registry\.npmjs\.org; refused: example\.com:443 \(not on the allow-list\)/,
      ),
    });
  });

  it("no iteration begins, and the model is not asked, once a stop is recorded", async () => {
    const { run } = await newRun();
    await markRunStopping(t.database.db, run);
    const before = replay.requests;
    expect(await think(agent, run, 1)).toEqual({ next: "stop" });
    expect(replay.requests).toBe(before);
  });
});

describe("the app process in the model's context", () => {
  it("sends the app's state and the log lines since the previous think, each once", async () => {
    const { run, project } = await newRun("openai-compatible/watch");
    const sandbox = await agent.sandbox(project.id);
    await sandbox.writeFile(
      "server.js",
      `require("http").createServer((q, s) => s.end("ok")).listen(5173, () => console.error("compile error: first"));`,
    );
    try {
      expect(await sandbox.app.start({ command: "node server.js" })).toMatchObject({ state: "running" });
      // The stderr line is written by then or very soon after.
      for (let i = 0; i < 100 && !(await sandbox.app.logs()).lines.some((l) => l.text.includes("first")); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }

      expect(await think(agent, run, 1)).toEqual({ next: "act" });
      const first = replay.recentPrompts.at(-1)!;
      expect(first).toContain(
        "The app process (dev server): running, listening on port 5173, command `node server.js`",
      );
      expect(first).toContain("stderr: compile error: first");
      expect(first).toContain("system: listening on port 5173");
      expect(first).not.toContain("stdout:");

      expect(await act(agent, run, 1)).toEqual({ next: "think" });
      await sandbox.app.appendLog("browser", "Uncaught TypeError: x is undefined");
      expect(await think(agent, run, 2)).toEqual({ next: "act" });
      const second = replay.recentPrompts.at(-1)!;
      expect(second).toContain("browser: Uncaught TypeError: x is undefined");
      expect(second).not.toContain("compile error: first");

      // Where the second think stopped reading is saved with its action, for the next one (and a re-run) to start from.
      const [saved] = await t.database.db
        .select()
        .from(agentEntries)
        .where(and(eq(agentEntries.runId, run.id), eq(agentEntries.iteration, 2), eq(agentEntries.kind, "action")));
      expect(saved!.payload.appLogSeq).toBe((await sandbox.app.logs()).nextSeq);
    } finally {
      await sandbox.app.stop();
    }
  });
});
