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
import { agentEntries, runEvents, runs } from "../../db/schema";
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

async function newRun(script = "append") {
  const { db } = t.database;
  const { user, project } = await createBuilder(db);
  const [run] = await db
    .insert(runs)
    .values({
      userId: user.id,
      projectId: project.id,
      prompt: "append a line",
      model: `openai-compatible/${script}`,
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

    const results = await db
      .select()
      .from(agentEntries)
      .where(and(eq(agentEntries.runId, run.id), eq(agentEntries.kind, "result")));
    expect(results).toHaveLength(1);
    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(rows.filter((r) => r.type === "tool_result").map((r) => r.writes)).toEqual([1]);
  });

  it("act records the connections the sandbox refused as one run event, beside the tool result", async () => {
    const { db } = t.database;
    const { run } = await newRun("blocked");
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
