/**
 * The compaction steps on their own (no engine), as the engine runs them
 * after a crash: think finds the prompt over budget and asks for a
 * compaction without calling the model; compact summarizes once, however
 * often it runs; a think retried after a crash (its answer not saved yet)
 * sends exactly the same prompt.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnv } from "../../app/env.server";
import { agentEntries, runEvents, runs } from "../../db/schema";
import { SUMMARY_REQUEST_PHRASE } from "../../model-replay/answer";
import { startReplayServer } from "../../model-replay/server";
import { closeEgressProxies } from "../../sandbox";
import { createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder } from "../../tests/support/fixtures";
import { compact } from "./compact";
import { createAgentContext, type AgentContext } from "./context";
import { saveEntry } from "./entries";
import { startAgentRun, think } from "./steps";

const DONE_STEPS = 15;

let t: TestDatabase;
let replay: Awaited<ReturnType<typeof startReplayServer>>;
let agent: AgentContext;
let dataDir: string;

beforeAll(async () => {
  t = await createTestDatabase();
  replay = await startReplayServer({
    scripts: [
      {
        name: "long",
        summary: "## Files\n- `notes.txt`: the builder's notes",
        turns: [
          ...Array.from({ length: DONE_STEPS }, () => ({ reply: { tool: "list_files" } })),
          { reply: { tool: "read_file", path: "notes.txt" } },
        ],
      },
    ],
    port: 0,
  });
  dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-compact-"));
  agent = createAgentContext(
    parseEnv({ DYNO_DATA_DIR: dataDir, AGENT_BASE_URL: replay.url, BAML_LOG: "error", AGENT_CONTEXT_TOKENS: "6000" }),
    t.database,
  );
});

afterAll(async () => {
  await closeEgressProxies();
  await replay?.close();
  await t?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A running run whose conversation already has DONE_STEPS steps with long results. */
async function longRun() {
  const { db } = t.database;
  const { user, project } = await createBuilder(db);
  const [row] = await db
    .insert(runs)
    .values({
      userId: user.id,
      projectId: project.id,
      prompt: "Take notes",
      model: "openai-compatible/long",
      maxIterations: 50,
    })
    .returning();
  const base = { runId: row!.id, projectId: project.id };
  await saveEntry(db, { ...base, iteration: 0, kind: "user", payload: { prompt: "Take notes" } });
  for (let i = 1; i <= DONE_STEPS; i++) {
    // Each step different, so none looks stuck.
    await saveEntry(db, {
      ...base,
      iteration: i,
      kind: "action",
      payload: { action: { tool: "list_files", path: `d${i}` } },
    });
    const content = Array.from({ length: 120 }, (_, n) => `file-${i}-${n}.txt`).join("\n");
    await saveEntry(db, { ...base, iteration: i, kind: "result", payload: { tool: "list_files", ok: true, content } });
  }
  return startAgentRun(agent, row!.id);
}

describe("compaction steps run twice", () => {
  it("asks for a compaction without calling the model, summarizes once, and a retried think sends the same prompt", async () => {
    const { db } = t.database;
    const run = await longRun();
    const iteration = DONE_STEPS + 1;

    const before = replay.requests;
    const thought = await think(agent, run, iteration);
    expect(thought).toMatchObject({ next: "compact", through: expect.any(Number) });
    expect(replay.requests).toBe(before);
    const through = (thought as { through: number }).through;

    expect(await compact(agent, run, iteration, through)).toEqual({ next: "think" });
    expect(replay.requests).toBe(before + 1);
    expect(replay.recentPrompts.at(-1)).toContain(SUMMARY_REQUEST_PHRASE);
    expect(await compact(agent, run, iteration, through)).toEqual({ next: "think" });
    expect(replay.requests).toBe(before + 1);
    const summaries = await db
      .select()
      .from(agentEntries)
      .where(and(eq(agentEntries.runId, run.id), eq(agentEntries.kind, "summary")));
    expect(summaries).toHaveLength(1);
    expect(summaries[0]!.payload).toMatchObject({
      coversThrough: through,
      summary: expect.stringContaining("notes.txt"),
    });

    // The answer: the script's turn after the summarized ones, so the turn count survived.
    expect(await think(agent, run, iteration, { compacted: true })).toEqual({ next: "act" });
    const sent = replay.recentPrompts.at(-1)!;
    expect(sent).toMatch(/^\[\d+ earlier turns of yours are summarized here/m);
    expect(sent).toContain("`notes.txt`: the builder's notes");
    const [action] = await db
      .select()
      .from(agentEntries)
      .where(
        and(eq(agentEntries.runId, run.id), eq(agentEntries.iteration, iteration), eq(agentEntries.kind, "action")),
      );
    expect(action!.payload.action).toEqual({ tool: "read_file", path: "notes.txt" });

    // A crash before the answer was saved: the retried think asks again, with the very same prompt.
    await db.delete(agentEntries).where(eq(agentEntries.id, action!.id));
    expect(await think(agent, run, iteration, { compacted: true })).toEqual({ next: "act" });
    expect(replay.recentPrompts.at(-1)).toBe(sent);

    const thinking = await db
      .select()
      .from(runEvents)
      .where(and(eq(runEvents.runId, run.id), eq(runEvents.type, "thinking")));
    expect(thinking.map((e) => [e.data.iteration, e.writes])).toEqual([[iteration, 1]]);
  });
});
