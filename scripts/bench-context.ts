/**
 * npm run bench:context — does the prompt stay bounded over a long project?
 *
 * One project, 30 prompts, about 500 iterations in all (writes, reads and
 * commands with long outputs), run by the in-process agent loop
 * (inngest/agent/loop.ts with a plain step runner: the same step bodies the
 * durable function runs) with the real BAML client against the replay
 * stand-in, the database and the local sandbox. The replay server logs every
 * request's size; printed: prompt tokens per step at 10…500 iterations next
 * to what the whole history would have been, and what compaction costs (time
 * of the compact step, tokens of the summary requests).
 *
 * Options: --prompts N (30), --steps N (tool steps per prompt, 16), --context N (AGENT_CONTEXT_TOKENS, 32000).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import type { ReplayScript } from "../model-replay/script";
import { startReplayServer } from "../model-replay/server";

const { values: args } = parseArgs({
  options: {
    prompts: { type: "string", default: "30" },
    steps: { type: "string", default: "16" },
    context: { type: "string", default: "32000" },
  },
});
const PROMPTS = Number(args.prompts);
const STEPS = Number(args.steps);
const CONTEXT_TOKENS = Number(args.context);

/** Prompt p's turns: a file written, read back, a command with a long output, a check; then the reply. */
function promptTurns(p: number): ReplayScript["turns"] {
  const turns: ReplayScript["turns"] = [];
  for (let s = 1; s <= STEPS; s++) {
    const file = `src/part-${p}-${s}.js`;
    const reply =
      s % 4 === 1
        ? {
            tool: "write_file",
            path: file,
            content: `// Part ${p}.${s}\n${Array.from({ length: 40 }, (_, i) => `export const v${i} = ${i * s};`).join("\n")}\n`,
          }
        : s % 4 === 2
          ? { tool: "read_file", path: `src/part-${p}-${s - 1}.js` }
          : s % 4 === 3
            ? { tool: "run_command", command: `seq ${p * 10_000 + s * 100} ${p * 10_000 + s * 100 + 400}` }
            : { tool: "run_command", command: `node --check src/part-${p}-${s - 3}.js && wc -c src/*.js | tail -3` };
    turns.push({ reply });
  }
  turns.push({ reply: { tool: "reply_to_user", message: `Prompt ${p} done.` } });
  return turns;
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)] ?? 0;

async function main() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-bench-context-"));
  let dropDatabase = async () => {};
  if (process.env.DATABASE_URL) {
    const name = `dyno_bench_context_${process.pid}`;
    const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const url = new URL(process.env.DATABASE_URL);
    url.pathname = `/${name}`;
    process.env.DATABASE_URL = url.toString();
    dropDatabase = async () => {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    };
  }
  const script: ReplayScript = {
    name: "long-project",
    turns: Array.from({ length: PROMPTS }, (_, p) => promptTurns(p + 1)).flat(),
  };
  const replay = await startReplayServer({ scripts: [script], host: "127.0.0.1", port: 0 });
  Object.assign(process.env, {
    DYNO_DATA_DIR: dataDir,
    AGENT_BASE_URL: replay.url,
    AGENT_CONTEXT_TOKENS: String(CONTEXT_TOKENS),
    // Measured here: the prompt size, not the budgets (which would end a long project part way).
    AGENT_RUN_TOKEN_BUDGET: "0",
    AGENT_DAILY_TOKEN_BUDGET: "0",
    BAML_LOG: process.env.BAML_LOG ?? "error",
  });

  const { getDatabase } = await import("../db");
  const { users, projects, runs } = await import("../db/schema");
  const { recordPrompt } = await import("../app/models/runs.server");
  const { createAgentContext } = await import("../inngest/agent/context");
  const { runAgentLoop } = await import("../inngest/agent/loop");
  const { renderConversation } = await import("../inngest/agent/conversation");
  const { turnsTokens } = await import("../inngest/agent/compaction");
  const { projectEntries } = await import("../inngest/agent/entries");
  const { promptBudget } = await import("../inngest/agent/context-budget");
  const { eq } = await import("drizzle-orm");

  const database = getDatabase();
  await database.migrate();
  const { db } = database;
  const agent = createAgentContext();
  const [user] = await db
    .insert(users)
    .values({ email: `bench-context-${process.pid}@example.test`, passwordHash: "!bench" })
    .returning();
  const [project] = await db.insert(projects).values({ userId: user!.id, title: "Long project" }).returning();

  const budget = promptBudget(CONTEXT_TOKENS).promptTokens;
  console.log(
    `\nDyno context benchmark: ${PROMPTS} prompts x ${STEPS + 1} iterations; context window ${CONTEXT_TOKENS} tokens ` +
      `(prompt budget ${budget}); ${database.driver}, ${os.cpus().length} cores, Node ${process.version}\n`,
  );

  /** Per iteration of the project: the prompt the model was sent, and what the whole history was by then. */
  const perStep: { iteration: number; prompt: number; history: number }[] = [];
  const compactMs: number[] = [];
  const thinkMs: number[] = [];
  let iteration = 0;
  const began = performance.now();
  for (let p = 1; p <= PROMPTS; p++) {
    const run = await recordPrompt(db, {
      userId: user!.id,
      projectId: project!.id,
      input: { prompt: `Prompt ${p}: add part ${p} of the app.` },
      model: "openai-compatible/long-project",
    });
    await runAgentLoop(agent, run.id, async (id, fn) => {
      const start = performance.now();
      const logged = replay.requestLog.length;
      const output = await fn();
      const took = performance.now() - start;
      if (id.startsWith("compact-")) compactMs.push(took);
      if (id.startsWith("think-")) {
        thinkMs.push(took);
        const sent = replay.requestLog.slice(logged).filter((r) => typeof r.turn === "number");
        if (sent.length > 0) {
          iteration++;
          const entries = (await projectEntries(db, project!.id)).filter((e) => e.kind !== "summary");
          perStep.push({
            iteration,
            prompt: sent.at(-1)!.promptTokens,
            history: turnsTokens(renderConversation(entries)),
          });
        }
      }
      return output;
    });
    const [row] = await db.select().from(runs).where(eq(runs.id, run.id));
    if (row!.status !== "complete") throw new Error(`prompt ${p} ended ${row!.status}: ${row!.error}`);
  }
  const wall = performance.now() - began;

  console.log("iteration | prompt sent (tokens) | whole history, turns only (tokens) | sent / budget");
  for (const at of [10, 25, 50, 100, 200, 300, 400, 500].filter((n) => n <= perStep.length)) {
    const step = perStep[at - 1]!;
    console.log(
      `${String(at).padStart(9)} | ${String(step.prompt).padStart(20)} | ${String(step.history).padStart(34)} | ` +
        `${(step.prompt / budget).toFixed(2).padStart(13)}`,
    );
  }
  const prompts = perStep.map((s) => s.prompt);
  const lastHundred = prompts.slice(-100);
  console.log(
    `\nprompt tokens over all ${prompts.length} steps: max ${Math.max(...prompts)} (budget ${budget}), ` +
      `median ${percentile(prompts, 0.5)}; over the last 100 steps: median ${percentile(lastHundred, 0.5)}, ` +
      `max ${Math.max(...lastHundred)}`,
  );
  const first = prompts.slice(100, 200);
  console.log(
    `flat after compaction: median of steps 101-200 ${percentile(first, 0.5)} vs steps ${prompts.length - 99}-${prompts.length} ` +
      `${percentile(lastHundred, 0.5)} (ratio ${(percentile(lastHundred, 0.5) / Math.max(1, percentile(first, 0.5))).toFixed(2)})`,
  );

  const summaries = replay.requestLog.filter((r) => r.turn === "summary");
  const summaryTokens = summaries.map((r) => r.promptTokens);
  const allPromptTokens = replay.requestLog.reduce((sum, r) => sum + r.promptTokens, 0);
  console.log(
    `\ncompactions: ${compactMs.length}, one per ${(perStep.length / Math.max(1, compactMs.length)).toFixed(1)} steps; ` +
      `compact step ${percentile(compactMs, 0.5).toFixed(0)} ms median, ${percentile(compactMs, 0.95).toFixed(0)} ms p95 ` +
      `(think step ${percentile(thinkMs, 0.5).toFixed(0)} ms median; the replay answers at once, a real model adds its latency)`,
  );
  console.log(
    `summary requests: ${percentile(summaryTokens, 0.5)} prompt tokens median, ${Math.max(0, ...summaryTokens)} max; ` +
      `${summaryTokens.reduce((a, b) => a + b, 0)} in all = ${((100 * summaryTokens.reduce((a, b) => a + b, 0)) / Math.max(1, allPromptTokens)).toFixed(1)}% of all prompt tokens sent`,
  );
  const sentTotal = prompts.reduce((a, b) => a + b, 0);
  const historyTotal = perStep.reduce((sum, s) => sum + s.history, 0);
  console.log(
    `prompt tokens sent for the turns: ${sentTotal}; sending the whole history each step would have been ${historyTotal} ` +
      `(${(historyTotal / Math.max(1, sentTotal)).toFixed(1)}x)`,
  );
  console.log(`wall time ${(wall / 1000).toFixed(1)} s for ${perStep.length} iterations`);
  console.log("\nTargets: every prompt under its budget; prompt size flat (not growing) once compaction starts.");

  await database.close();
  await replay.close();
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}

main().then(
  // The local sandbox's helpers (egress proxy, supervisors) would keep the process alive.
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
