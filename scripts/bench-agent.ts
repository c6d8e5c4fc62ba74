/**
 * npm run bench:agent — what durability costs.
 *
 * The same scripted session (29 tool steps and a reply: 30 iterations) runs
 * twice per model latency, side by side in this process: through the durable
 * Inngest function on the real engine, and through a plain in-process loop
 * that calls the very same step bodies (inngest/agent/loop.ts with a direct
 * step runner). Both use the real BAML client against the replay stand-in,
 * the same database and the local sandbox, so the difference is the
 * orchestration: the engine's scheduling, HTTP round trips and checkpoints.
 *
 * It also measures the step state the engine keeps (the JSON of every step
 * output, recorded by inngest/step-state.ts) at 10 and 50 iterations: per
 * iteration it must stay constant while the conversation (in Postgres) grows.
 *
 * Options: --reps N (default 3; the median is reported), --iterations N (30).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { eq } from "drizzle-orm";
import getPort from "get-port";
import postgres from "postgres";
import { startReplayServer } from "../model-replay/server";
import { benchSession } from "./lib/bench-session";
import { startEngineDevServer } from "./lib/engine-process";
import { findOrBuildEngine } from "./lib/inngest-engine";

const { values: args } = parseArgs({
  options: { reps: { type: "string", default: "3" }, iterations: { type: "string", default: "30" } },
});
const REPS = Number(args.reps);
const ITERATIONS = Number(args.iterations);
const LATENCIES = [0, 200];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(0)} ms`;

async function main() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-bench-"));
  let dropDatabase = async () => {};
  if (process.env.DATABASE_URL) {
    // A database of its own on the same server, dropped at the end.
    const name = `dyno_bench_${process.pid}`;
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
  const replay = await startReplayServer({ scripts: [], host: "127.0.0.1", port: 0 });
  const enginePort = await getPort({ host: "127.0.0.1" });
  Object.assign(process.env, {
    DYNO_DATA_DIR: dataDir,
    AGENT_BASE_URL: replay.url,
    BAML_LOG: process.env.BAML_LOG ?? "warn",
    INNGEST_DEV: "1",
    INNGEST_BASE_URL: `http://127.0.0.1:${enginePort}`,
    AGENT_MAX_ITERATIONS: "100",
  });

  const engineBin = await findOrBuildEngine();
  const { startAppServer } = await import("../server/app");
  const { getDatabase } = await import("../db");
  const { users, projects, runs } = await import("../db/schema");
  const { recordPrompt, startRun } = await import("../app/models/runs.server");
  const { createAgentContext } = await import("../inngest/agent/context");
  const { runAgentLoop } = await import("../inngest/agent/loop");
  const { subscribeRunEvents } = await import("../db/run-events");
  const { stepStateOf } = await import("../inngest/step-state");
  const { renderConversation } = await import("../inngest/agent/conversation");
  const { projectEntries } = await import("../inngest/agent/entries");

  const app = await startAppServer({ mode: "development", port: 0, watch: false });
  const ports = await Promise.all([1, 2, 3, 4].map(() => getPort({ host: "127.0.0.1" })));
  const engine = await startEngineDevServer({
    bin: engineBin.bin,
    appUrl: `${app.url}/api/inngest`,
    ports: {
      api: enginePort,
      connectGateway: ports[0]!,
      connectGatewayGrpc: ports[1]!,
      connectExecutorGrpc: ports[2]!,
      debugApi: ports[3]!,
    },
    waitForFunctions: ["dyno-coding-agent"],
  });
  const database = getDatabase();
  const { db } = database;
  const agent = createAgentContext();
  const [user] = await db
    .insert(users)
    .values({ email: `bench-${process.pid}@example.test`, passwordHash: "!bench" })
    .returning();

  let scriptCount = 0;
  async function newRun(iterations: number, delayMs: number) {
    const name = `bench-${++scriptCount}`;
    replay.addScript(benchSession(name, iterations, delayMs));
    const [project] = await db.insert(projects).values({ userId: user!.id, title: "Bench" }).returning();
    return {
      project: project!,
      request: {
        userId: user!.id,
        projectId: project!.id,
        input: { prompt: "Write the pages." },
        model: `openai-compatible/${name}`,
      },
    };
  }

  async function finished(run: { id: string; projectId: string }) {
    for await (const row of subscribeRunEvents(database, { projectId: run.projectId, runId: run.id })) {
      if (row.type === "complete" || row.type === "failed" || row.type === "stopped") {
        if (row.type !== "complete")
          throw new Error(`bench run ${run.id} ended ${row.type}: ${JSON.stringify(row.data)}`);
        return;
      }
    }
  }

  /** Wall time from the prompt to the run's completion, and from `start` to completion. */
  async function timeDurable(iterations: number, delayMs: number) {
    const { request } = await newRun(iterations, delayMs);
    const sentAt = performance.now();
    const run = await startRun(db, request);
    await finished(run);
    const total = performance.now() - sentAt;
    const [row] = await db.select().from(runs).where(eq(runs.id, run.id));
    return {
      total,
      loop: row!.finishedAt!.getTime() - row!.startedAt!.getTime(),
      runId: run.id,
      projectId: run.projectId,
    };
  }

  /** Time spent in each kind of step body (think, act, …) by the inline loop: where an iteration's time goes. */
  const stepTimes = new Map<string, number[]>();
  async function timeInline(iterations: number, delayMs: number) {
    const { request } = await newRun(iterations, delayMs);
    const sentAt = performance.now();
    const run = await recordPrompt(db, request);
    await runAgentLoop(agent, run.id, async (id, fn) => {
      const began = performance.now();
      try {
        return await fn();
      } finally {
        const kind = `${id.replace(/-\d+$/, "")}@${delayMs}`;
        stepTimes.set(kind, [...(stepTimes.get(kind) ?? []), performance.now() - began]);
      }
    });
    const total = performance.now() - sentAt;
    const [row] = await db.select().from(runs).where(eq(runs.id, run.id));
    if (row!.status !== "complete") throw new Error(`inline bench run ended ${row!.status}: ${row!.error}`);
    return { total, loop: row!.finishedAt!.getTime() - row!.startedAt!.getTime() };
  }

  console.log(
    `\nDyno agent benchmark: ${ITERATIONS} iterations, median of ${REPS}; ${database.driver}, engine ${engineBin.version}, ` +
      `${os.cpus().length} cores, Node ${process.version}\n`,
  );
  // Warm up both paths once (Vite's first module load, BAML's runtime, the sandbox probe).
  await timeInline(3, 0);
  await timeDurable(3, 0);

  console.log(
    "model latency | inline loop   | durable loop  | durable, prompt->done | overhead/iteration | durable/inline",
  );
  for (const latency of LATENCIES) {
    const inline: number[] = [];
    const durable: number[] = [];
    const durableTotal: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      // Alternate, so drift (caches, the machine's other work) hits both alike.
      inline.push((await timeInline(ITERATIONS, latency)).loop);
      const d = await timeDurable(ITERATIONS, latency);
      durable.push(d.loop);
      durableTotal.push(d.total);
    }
    const [i, d, t] = [median(inline), median(durable), median(durableTotal)];
    console.log(
      `${String(latency).padStart(10)} ms | ${ms(i).padStart(13)} | ${ms(d).padStart(13)} | ${ms(t).padStart(21)} | ` +
        `${ms((d - i) / ITERATIONS).padStart(18)} | ${(d / i).toFixed(2).padStart(14)}`,
    );
  }

  console.log("\nwhere an inline iteration's time goes (mean per step body):");
  for (const latency of LATENCIES) {
    const parts = ["think", "act"].map((kind) => {
      const times = stepTimes.get(`${kind}@${latency}`) ?? [];
      return `${kind} ${ms(times.reduce((a, b) => a + b, 0) / Math.max(times.length, 1))}`;
    });
    console.log(`  model latency ${latency} ms: ${parts.join(", ")}`);
  }

  console.log("\nstep state kept by the engine (JSON of every step output) vs the conversation kept in Postgres:");
  console.log("iterations | steps | step state | per iteration | largest step | conversation (Postgres)");
  const states: { iterations: number; bytes: number; conversation: number }[] = [];
  for (const iterations of [10, 50]) {
    const run = await timeDurable(iterations, 0);
    const state = stepStateOf(run.runId);
    if (!state) throw new Error("no step state recorded: is the StepStateMeter middleware on the client?");
    const conversation = Buffer.byteLength(JSON.stringify(renderConversation(await projectEntries(db, run.projectId))));
    console.log(
      `${String(iterations).padStart(10)} | ${String(state.steps).padStart(5)} | ${`${state.bytes} B`.padStart(10)} | ` +
        `${`${(state.bytes / iterations).toFixed(1)} B`.padStart(13)} | ${`${state.largest} B`.padStart(12)} | ${`${conversation} B`.padStart(10)}`,
    );
    states.push({ iterations, bytes: state.bytes, conversation });
  }
  const [few, many] = states as [(typeof states)[0], (typeof states)[0]];
  const span = many.iterations - few.iterations;
  console.log(
    `each iteration from ${few.iterations} to ${many.iterations} added ${((many.bytes - few.bytes) / span).toFixed(1)} B of step state ` +
      `and ${((many.conversation - few.conversation) / span).toFixed(0)} B of conversation (kept in Postgres).`,
  );
  console.log(
    "\nTargets: overhead per iteration <= 50 ms; step state per iteration constant (not growing with the conversation).",
  );

  await engine.stop();
  await app.close();
  await replay.close();
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
