/**
 * npm run bench:iteration — what one agent iteration costs the app process.
 *
 * Runs bench:load's scripted session (writes, reads, a command every fifth
 * step, a reply) through the plain in-process loop (inngest/agent/loop.ts
 * with a direct step runner: the same step bodies the durable function runs)
 * against Postgres and the local sandbox, and counts per iteration: the SQL
 * statements the app sends (by statement, the most frequent first), the child
 * processes it spawns (by program), and the CPU it uses. These are the
 * app-side costs that decide how many concurrent runs one process carries
 * (bench:load's concurrent part); the engine's side is not in them.
 *
 * Needs DATABASE_URL (a database of its own is created and dropped).
 * Options: --iterations N (20), --reps N (3; the last is reported, the others warm up).
 */
import { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import type { ReplayScript } from "../model-replay/script";
import { startReplayServer } from "../model-replay/server";

const { values: args } = parseArgs({
  options: { iterations: { type: "string", default: "20" }, reps: { type: "string", default: "3" } },
});
const ITERATIONS = Number(args.iterations);
const REPS = Math.max(1, Number(args.reps));

function session(name: string, iterations: number): ReplayScript {
  const turns: ReplayScript["turns"] = [];
  for (let i = 1; i < iterations; i++) {
    const reply =
      i % 5 === 0
        ? { tool: "run_command", command: `wc -c page-${i - 1}.html` }
        : i % 2 === 0
          ? { tool: "read_file", path: `page-${i - 1}.html` }
          : { tool: "write_file", path: `page-${i}.html`, content: `<h1>Page ${i}</h1>\n`.repeat(20) };
    turns.push({ reply });
  }
  turns.push({ reply: { tool: "reply_to_user", message: `Wrote the pages in ${iterations} steps.` } });
  return { name, turns };
}

/** A statement's shape: parameters and literals out, so one query written with different values counts once. */
function shapeOf(statement: string): string {
  return statement
    .replace(/\$\d+/g, "?")
    .replace(/'[^']*'/g, "?")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 110);
}

const counts = { statements: new Map<string, number>(), spawns: new Map<string, number>(), counting: false };
function count(map: Map<string, number>, key: string) {
  if (counts.counting) map.set(key, (map.get(key) ?? 0) + 1);
}

// Every child process (spawn, execFile, exec) goes through ChildProcess#spawn.
// (An internal method, so typed here.)
type Spawning = { spawn(options: { file?: string }): unknown };
const prototype = ChildProcess.prototype as unknown as Spawning;
const originalSpawn = prototype.spawn;
prototype.spawn = function (this: Spawning, options) {
  count(counts.spawns, path.basename(options.file ?? "?"));
  return originalSpawn.call(this, options);
};

async function main() {
  if (!process.env.DATABASE_URL) throw new Error("bench:iteration needs DATABASE_URL (a Postgres server)");
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-bench-iteration-"));
  const name = `dyno_bench_iteration_${process.pid}`;
  const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(process.env.DATABASE_URL);
  url.pathname = `/${name}`;
  const replay = await startReplayServer({ scripts: [], host: "127.0.0.1", port: 0 });
  Object.assign(process.env, {
    DATABASE_URL: url.toString(),
    DYNO_DATA_DIR: dataDir,
    AGENT_BASE_URL: replay.url,
    BAML_LOG: process.env.BAML_LOG ?? "warn",
    AGENT_MAX_ITERATIONS: "100",
  });
  const { createDatabase } = await import("../db/client");
  const { users, projects } = await import("../db/schema");
  const { recordPrompt } = await import("../app/models/runs.server");
  const { createAgentContext } = await import("../inngest/agent/context");
  const { runAgentLoop } = await import("../inngest/agent/loop");
  const { env } = await import("../app/env.server");
  const database = createDatabase({
    url: url.toString(),
    onQuery: (statement) => count(counts.statements, shapeOf(statement)),
  });
  try {
    await database.migrate();
    const { db } = database;
    const agent = createAgentContext(env(), database);
    const [user] = await db
      .insert(users)
      .values({ email: `bench-iteration-${process.pid}@example.test`, passwordHash: "!bench" })
      .returning();

    let cpu = 0;
    let wall = 0;
    for (let rep = 0; rep < REPS; rep++) {
      const script = `bench-iteration-${rep}`;
      replay.addScript(session(script, ITERATIONS));
      const [project] = await db.insert(projects).values({ userId: user!.id, title: "Bench" }).returning();
      const run = await recordPrompt(db, {
        userId: user!.id,
        projectId: project!.id,
        input: { prompt: "Write the pages." },
        model: `openai-compatible/${script}`,
      });
      const last = rep === REPS - 1;
      counts.statements.clear();
      counts.spawns.clear();
      counts.counting = last;
      const cpuBefore = process.cpuUsage();
      const began = performance.now();
      const outcome = await runAgentLoop(agent, run.id, (_id, fn) => fn());
      wall = performance.now() - began;
      const used = process.cpuUsage(cpuBefore);
      cpu = (used.user + used.system) / 1000;
      counts.counting = false;
      if (!("iterations" in outcome) || outcome.iterations !== ITERATIONS)
        throw new Error(`the session ended early: ${JSON.stringify(outcome)}`);
    }

    const total = (map: Map<string, number>) => [...map.values()].reduce((a, b) => a + b, 0);
    const per = (n: number) => (n / ITERATIONS).toFixed(1);
    console.log(
      `\nDyno iteration cost: ${ITERATIONS}-iteration scripted session in process (model answers at once), ` +
        `${os.cpus().length} cores, Node ${process.version}, load ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(" ")}\n`,
    );
    console.log(
      `per iteration: ${per(total(counts.statements))} SQL statements, ${per(total(counts.spawns))} child processes, ` +
        `${(cpu / ITERATIONS).toFixed(1)} ms CPU (this process, replay server included), ${(wall / ITERATIONS).toFixed(1)} ms wall`,
    );
    console.log("\nstatements per iteration, most frequent first:");
    for (const [shape, n] of [...counts.statements].sort((a, b) => b[1] - a[1]).slice(0, 25))
      console.log(`  ${per(n).padStart(5)}  ${shape}`);
    console.log("\nchild processes per iteration:");
    for (const [file, n] of [...counts.spawns].sort((a, b) => b[1] - a[1]))
      console.log(`  ${per(n).padStart(5)}  ${file}`);
  } finally {
    await database.close();
    await replay.close();
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
