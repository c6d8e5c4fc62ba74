/**
 * What goes wrong, handled as results, not crashes: model output that does
 * not parse, an unknown tool, a failing tool, a model server that answers
 * 429/500 before it answers; and hostile actions: paths that try to leave
 * the workspace, secrets in the environment, huge output, a command that
 * never ends.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, runEvents, runs } from "../../db/schema";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;
let replay: ReplayServer;
let app: typeof import("../../app/models/runs.server");

const SECRET = `secret-${Math.random().toString(36).slice(2)}`;

beforeAll(async () => {
  stack = await startStack({
    env: {
      AGENT_MAX_REPAIRS: "2",
      SANDBOX_COMMAND_TIMEOUT: "2s",
      SANDBOX_OUTPUT_LIMIT: "8192",
      DYNO_PROBE_SECRET: SECRET,
    },
  });
  replay = stack.replay;
  app = await import("../../app/models/runs.server");
});

afterAll(async () => {
  await stack?.stop();
});

async function runScript(
  turns: Parameters<typeof scripted>[1],
  input: { mode?: "build" | "ask"; maxIterations?: number } = {},
) {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  const run = await app.startRun(db, {
    userId: user.id,
    projectId: project.id,
    input: { prompt: "go", ...input },
    model: scripted(replay, turns),
  });
  const last = await waitForRunToFinish(stack.database, run, 60_000);
  const results = (
    await db.select().from(agentEntries).where(eq(agentEntries.runId, run.id)).orderBy(asc(agentEntries.iteration))
  )
    .filter((e) => e.kind === "result")
    .map((e) => e.payload as { ok: boolean; content: string; tool?: string; problem?: string; summary?: string });
  const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
  const [row] = await db.select().from(runs).where(eq(runs.id, run.id));
  return { last, results, events, run: row!, project };
}

describe("model and tool failures become results the model reads", () => {
  it("feeds back unparseable output, an unknown tool and a failing tool, survives 429 and 500, and completes", async () => {
    const { last, results, events, run } = await runScript([
      turn.raw("Sure! I will now write the file for you."),
      { reply: { tool: "deploy_to_production", target: "prod" } },
      turn.read("does-not-exist.txt"),
      turn.run("exit 3"),
      turn.reply("Recovered from everything.", { errors: [429, 500] }),
    ]);
    expect(last.type).toBe("complete");
    expect(run.error).toBeNull();
    expect(results[0]).toMatchObject({ problem: "unparseable", ok: false });
    expect(results[1]).toMatchObject({ problem: "unknown_tool", ok: false });
    expect(results[1]!.content).toMatch(/deploy_to_production[\s\S]*write_file/);
    expect(results[2]).toMatchObject({ tool: "read_file", ok: false });
    expect(results[2]!.content).toMatch(/does-not-exist\.txt/);
    expect(results[3]).toMatchObject({ tool: "run_command", ok: false, summary: "Exit code 3" });
    const outcomes = events.filter((e) => e.type === "tool_result").map((e) => [e.data.tool, e.data.ok]);
    expect(outcomes).toEqual([
      ["invalid_output", false],
      ["unknown_tool", false],
      ["read_file", false],
      ["run_command", false],
    ]);
    expect(events.map((e) => e.writes)).toEqual(events.map(() => 1));
  });

  it("fails the run, saying why, when the model's output cannot be used more times in a row than AGENT_MAX_REPAIRS allows", async () => {
    const { last, run, results } = await runScript([
      turn.raw("no"),
      turn.raw("still no"),
      turn.raw("{not json"),
      turn.reply("too late"),
    ]);
    expect(last.type).toBe("failed");
    expect(run.error).toMatch(/could not be used 3 times in a row/);
    expect(results).toHaveLength(3);
  });
});

describe("runs that cannot finish end failed, saying why", () => {
  it("fails a run that uses all its iterations without replying", async () => {
    const { last, run, results } = await runScript([turn.list(), turn.list(), turn.list(), turn.reply("too late")], {
      maxIterations: 2,
    });
    expect(last.type).toBe("failed");
    expect(run.error).toMatch(/used all 2 iterations without finishing/);
    expect(results).toHaveLength(2);
  });

  it("fails at once, without retrying the step, when the model server refuses the key", async () => {
    // A 401 is asked once (no retry can fix it) and ends the run instead of being retried by the engine.
    const { last, run, events } = await runScript([turn.reply("never", { errors: [401, 401, 401, 401] })]);
    expect(last.type).toBe("failed");
    expect(run.error).toMatch(/refused the request[\s\S]*401/);
    expect(events.filter((e) => e.type === "thinking").map((e) => e.writes)).toEqual([1]);
  });
});

describe("ask mode", () => {
  it("does not let the model change files: a write comes back as not allowed", async () => {
    const { last, results, project } = await runScript(
      [turn.write("x.txt", "x"), turn.reply("I can only read in ask mode.")],
      { mode: "ask" },
    );
    expect(last.type).toBe("complete");
    expect(results[0]).toMatchObject({ problem: "unknown_tool", ok: false });
    expect(results[0]!.content).toMatch(/ask mode is read-only/);
    expect(existsSync(path.join(stack.workspace(project.id), "x.txt"))).toBe(false);
  });
});

describe("hostile actions stay inside the sandbox and inside their bounds", () => {
  it("refuses paths that leave the workspace and hides the app's secrets from commands", async () => {
    const { last, results, project } = await runScript([
      turn.write("../../escaped.txt", "out"),
      turn.write("../" + "x/".repeat(3) + "../../../../escaped-too.txt", "out"),
      turn.read("../../../../../../etc/hostname"),
      turn.read("/etc/passwd"),
      turn.run("ln -s /etc/passwd leak && echo linked"),
      turn.read("leak"),
      turn.run("env; echo x > /usr/escaped.txt; echo x > ../escaped.txt; true"),
      turn.reply("done"),
    ]);
    expect(last.type).toBe("complete");
    expect(results.slice(0, 3).every((r) => !r.ok && /outside|leave|workspace/i.test(r.content))).toBe(true);
    // "/etc/passwd" means the workspace's own etc/passwd, which does not exist.
    expect(results[3]).toMatchObject({ ok: false });
    expect(results[3]!.content).not.toMatch(/root:/);
    expect(results[5]).toMatchObject({ ok: false });
    expect(results[5]!.content).not.toMatch(/root:/);
    const envOutput = results[6]!.content;
    expect(envOutput).toMatch(/PATH=/);
    expect(envOutput).not.toContain(SECRET);
    expect(envOutput).not.toMatch(/DATABASE_URL|INNGEST_|AGENT_BASE_URL/);
    // Nothing landed outside this project's workspace.
    expect(readdirSync(path.join(stack.dataDir, "workspaces"))).not.toContain("escaped.txt");
    expect(existsSync(path.join(stack.dataDir, "escaped.txt"))).toBe(false);
    expect(existsSync("/usr/escaped.txt")).toBe(false);
    expect(existsSync(path.join(stack.workspace(project.id), "..", "escaped.txt"))).toBe(false);
  });

  it("caps huge output and kills a command that never ends, and the run goes on", async () => {
    const { last, results } = await runScript([
      turn.run("yes dyno | head -c 5000000"),
      turn.run("sleep 1000"),
      turn.run("while true; do :; done"),
      turn.reply("survived"),
    ]);
    expect(last.type).toBe("complete");
    expect(results[0]).toMatchObject({ ok: true });
    expect(results[0]!.content.length).toBeLessThan(3 * 8192);
    expect(results[0]!.content).toMatch(/omitted|truncated/);
    for (const killed of results.slice(1, 3)) {
      expect(killed).toMatchObject({ ok: false, summary: "Timed out and killed" });
    }
  });
});
