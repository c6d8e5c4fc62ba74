/**
 * npm run bench:load — Dyno under load, in production mode (`npm run build`, then the server started the way
 * `npm start` starts it, in a process of its own so its CPU is its own; the clients and the measuring run here).
 *
 *  (a) fan-out: N SSE clients on one project's /events; rows are appended (committed) here one every
 *      BENCH_LOAD_GAP_MS, and each client's receipt is timed against the commit: p50/p95/p99 for N = 1, 200, 500,
 *      2000, with the server's CPU (from /proc/<pid>/stat) and RSS, and the same with RUN_EVENTS_FANOUT=per-client
 *      (every stream reading for itself, as before decision 028) side by side;
 *  (b) run start: a prompt POSTed as the builder page posts it, to the first event after `queued` on the stream;
 *  (c) concurrent runs: 1, 10 and 50 projects running a scripted 20-iteration session at once (model latency
 *      200 ms): time outside the model per iteration and its ratio to one run alone; every run must complete with
 *      the expected number of events, and each project's stream must have delivered every one of its rows.
 *
 * Needs DATABASE_URL (a Postgres server; a database of its own is created and dropped) and the engine
 * (`npm run engine`). Options (or env): --clients 1,200,500,2000 (BENCH_LOAD_CLIENTS), --events 20
 * (BENCH_LOAD_EVENTS), --starts 10 (BENCH_LOAD_STARTS), --runs 1,10,50 (BENCH_LOAD_RUNS), --iterations 20,
 * --parts fanout,start,runs (BENCH_LOAD_PARTS), --compare 1 (0: no per-client baseline), --build 1 (0: use build/),
 * --tick N (BENCH_LOAD_TICK: the engine's queue poll interval in ms; unset: Dyno's ENGINE_TICK_MS, 50).
 * The machine's load average is printed beside the figures: on a busy machine they are noisy.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { eq, inArray } from "drizzle-orm";
import getPort from "get-port";
import postgres from "postgres";
import { startReplayServer } from "../model-replay/server";
import { benchSession } from "./lib/bench-session";
import { ENGINE_TICK_MS, startEngineDevServer, type EngineDevServer } from "./lib/engine-process";
import { findOrBuildEngine } from "./lib/inngest-engine";

const { values: args } = parseArgs({
  options: {
    clients: { type: "string", default: process.env.BENCH_LOAD_CLIENTS ?? "1,200,500,2000" },
    events: { type: "string", default: process.env.BENCH_LOAD_EVENTS ?? "20" },
    starts: { type: "string", default: process.env.BENCH_LOAD_STARTS ?? "10" },
    runs: { type: "string", default: process.env.BENCH_LOAD_RUNS ?? "1,10,50" },
    iterations: { type: "string", default: "20" },
    parts: { type: "string", default: process.env.BENCH_LOAD_PARTS ?? "fanout,start,runs" },
    compare: { type: "string", default: "1" },
    build: { type: "string", default: "1" },
    tick: { type: "string", default: process.env.BENCH_LOAD_TICK ?? "" },
  },
});
const list = (text: string) =>
  text
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
const CLIENTS = list(args.clients);
const EVENTS = Math.max(1, Number(args.events) || 20);
const STARTS = Math.max(1, Number(args.starts) || 10);
const RUNS = list(args.runs);
const ITERATIONS = Math.max(2, Number(args.iterations) || 20);
const PARTS = new Set(args.parts.split(",").map((s) => s.trim()));
const MODEL_LATENCY_MS = 200;
/** The engine's queue poll interval; unset: the engine's default. */
const TICK_MS = args.tick ? Number(args.tick) : undefined;
/** Between two appended rows: a busy run writes a few per second. */
const GAP_MS = Number(process.env.BENCH_LOAD_GAP_MS ?? 200);
const CLK_TCK = 100;
const SERVER_LOG = path.join(os.tmpdir(), `dyno-bench-load-server-${process.pid}.log`);

const TARGETS = { p95At500: 50, p95At2000: 150, startP95: 300, overheadRatioAt10: 1.5 };

// ---------------------------------------------------------------------------------------------------------------
// helpers

const percentile = (xs: number[], p: number) => {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const median = (xs: number[]) => percentile(xs, 50);
const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 1 : 0)} ms` : "-");
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const sleep = (delay: number) => new Promise((resolve) => setTimeout(resolve, delay));

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** CPU seconds all of Postgres' processes (postmaster, backends, workers) have used so far: they share the cores. */
function postgresCpuSeconds(): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "postgres") continue;
      total += cpuSeconds(Number(entry));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return total;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kib / 1024;
}

interface SseClient {
  /** When each run-event id arrived (performance.now()). */
  arrivals: Map<number, number>;
  /** Run-event types by id (kept only when asked). */
  types: Map<number, string>;
  opened: Promise<void>;
  onEvent?: (id: number, type: string | undefined) => void;
  close(): void;
}

/** A raw SSE client on a socket of its own; parses only what the benchmark needs. */
function sseClient(url: string, cookie: string, { keepTypes = false } = {}): SseClient {
  const client: SseClient = {
    arrivals: new Map(),
    types: new Map(),
    opened: Promise.resolve(),
    close: () => request.destroy(),
  };
  let buffer = "";
  let resolveOpened!: () => void;
  let rejectOpened!: (error: Error) => void;
  client.opened = new Promise((resolve, reject) => {
    resolveOpened = resolve;
    rejectOpened = reject;
  });
  const request = http.get(url, { agent: false, headers: { Accept: "text/event-stream", Cookie: cookie } }, (res) => {
    if (res.statusCode !== 200) return rejectOpened(new Error(`events answered ${res.statusCode}`));
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      const now = performance.now();
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        resolveOpened();
        if (!message.includes("event: run-event")) continue;
        const id = Number(/^id: (\d+)$/m.exec(message)?.[1]);
        client.arrivals.set(id, now);
        let type: string | undefined;
        if (keepTypes || client.onEvent) {
          const data = /^data: (.*)$/m.exec(message)?.[1];
          type = data ? (JSON.parse(data) as { type?: string }).type : undefined;
          if (keepTypes && type) client.types.set(id, type);
        }
        client.onEvent?.(id, type);
      }
    });
    res.on("error", () => {});
  });
  request.on("error", (error) => rejectOpened(error));
  return client;
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the stack

interface Server {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startServer(env: Record<string, string>, port: number): Promise<Server> {
  // BENCH_LOAD_PROFILE=<folder>: the server writes a V8 CPU profile there when it stops (where its time goes).
  const profile = process.env.BENCH_LOAD_PROFILE
    ? ["--cpu-prof", "--cpu-prof-dir", path.resolve(process.env.BENCH_LOAD_PROFILE)]
    : [];
  const child: ChildProcess = spawn(process.execPath, [...profile, "--import", "tsx", "server/index.ts"], {
    env: { ...process.env, ...env, NODE_ENV: "production", HOST: "127.0.0.1", PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  // The whole log goes to a file (printed at the end): a step that failed and was retried says why there.
  const log = createWriteStream(SERVER_LOG, { flags: "a" });
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
    log.write(chunk);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}):\n${output}`);
        return fetch(`${url}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
      },
      60_000,
      "the server's /healthz",
    );
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000).then(() => child.kill("SIGKILL"))]);
    },
  };
}

async function health(server: Server): Promise<{ eventStreams: number; runEventWatchers: number }> {
  return (await fetch(`${server.url}/healthz`)).json() as Promise<{ eventStreams: number; runEventWatchers: number }>;
}

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  if (!process.env.DATABASE_URL) throw new Error("bench:load needs DATABASE_URL (a Postgres server)");
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-bench-load-"));
  const dbName = `dyno_bench_load_${process.pid}`;
  const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  const dbUrl = new URL(process.env.DATABASE_URL);
  dbUrl.pathname = `/${dbName}`;

  if (args.build !== "0") {
    console.log("building (npm run build)…");
    const built = spawnSync("npm", ["run", "build"], { encoding: "utf8" });
    if (built.status !== 0) throw new Error(`npm run build failed:\n${built.stdout}\n${built.stderr}`);
  }

  const replay = await startReplayServer({ scripts: [], host: "127.0.0.1", port: 0 });
  replay.addScript({ name: "bench-start", turns: [{ reply: { tool: "reply_to_user", message: "Hello." } }] });
  replay.addScript(benchSession("bench-session", ITERATIONS, MODEL_LATENCY_MS));
  const enginePort = await getPort({ host: "127.0.0.1" });
  const appPort = await getPort({ host: "127.0.0.1" });
  const serverEnv: Record<string, string> = {
    DATABASE_URL: dbUrl.toString(),
    DYNO_DATA_DIR: dataDir,
    SESSION_SECRET: randomBytes(24).toString("hex"),
    PREVIEW_PORT: "0",
    AGENT_BASE_URL: replay.url,
    AGENT_MODEL: "openai-compatible/bench-start",
    AGENT_MAX_ITERATIONS: "100",
    BAML_LOG: "warn",
    INNGEST_DEV: "1",
    DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION: "1",
    INNGEST_BASE_URL: `http://127.0.0.1:${enginePort}`,
    RUN_RECONCILE_INTERVAL: "0s",
  };
  // This process writes rows, signs sessions and sends run events with the same settings.
  Object.assign(process.env, serverEnv);
  const { getDatabase, closeDatabase } = await import("../db");
  const { users, projects, runs, runEvents } = await import("../db/schema");
  const { appendRunEvent } = await import("../db/run-events");
  const { startSession } = await import("../app/auth/session.server");
  const { startRun } = await import("../app/models/runs.server");
  const database = getDatabase();
  await database.migrate();
  const { db } = database;
  const [user] = await db
    .insert(users)
    .values({ email: `bench-load-${process.pid}@example.test`, passwordHash: "!bench" })
    .returning();
  // A Set-Cookie value; the Cookie header takes its first part.
  const cookie = (await startSession(user!.id)).split(";")[0]!;
  const newProject = async () =>
    (await db.insert(projects).values({ userId: user!.id, title: "Bench" }).returning())[0]!;

  console.log(
    `\nDyno load benchmark (production build): ${os.cpus().length} cores, Node ${process.version}, ` +
      `load average at start ${load()}\n`,
  );

  const cleanups: (() => Promise<void>)[] = [];
  try {
    // -------------------------------------------------------------------------------------------------------- (a)
    const fanout = new Map<string, { n: number; p50: number; p95: number; p99: number; cpu: number; rss: number }[]>();
    async function measureFanout(server: Server, mode: string) {
      const rows: { n: number; p50: number; p95: number; p99: number; cpu: number; rss: number }[] = [];
      for (const n of CLIENTS) {
        const project = await newProject();
        const [run] = await db
          .insert(runs)
          .values({ userId: user!.id, projectId: project.id, prompt: "bench", maxIterations: 1 })
          .returning();
        const url = `${server.url}/projects/${project.id}/events`;
        const clients: SseClient[] = [];
        for (let i = 0; i < n; i += 100) {
          const batch = Array.from({ length: Math.min(100, n - i) }, () => sseClient(url, cookie));
          clients.push(...batch);
          await Promise.all(batch.map((c) => c.opened));
        }
        await waitFor(async () => (await health(server)).eventStreams >= n, 30_000, `${n} open streams`);
        const append = async (i: number) => {
          const row = await appendRunEvent(db, { runId: run!.id, projectId: project.id, type: "tick", data: { i } });
          return { id: row!.id, committedAt: performance.now() };
        };
        // Warm up (JIT, the feed's first read), then measure.
        for (let i = 0; i < 3; i++) {
          const { id } = await append(-1);
          await waitFor(() => clients.every((c) => c.arrivals.has(id)), 30_000, "the warm-up row");
        }
        const cpuBefore = cpuSeconds(server.pid);
        const clientCpuBefore = process.cpuUsage();
        const began = performance.now();
        const commits: { id: number; committedAt: number }[] = [];
        for (let i = 0; i < EVENTS; i++) {
          commits.push(await append(i));
          await sleep(GAP_MS);
        }
        const last = commits.at(-1)!.id;
        await waitFor(() => clients.every((c) => c.arrivals.has(last)), 60_000, `row ${last} at every client`);
        const seconds = (performance.now() - began) / 1000;
        const cpu = (cpuSeconds(server.pid) - cpuBefore) / seconds;
        const clientCpuUsed = process.cpuUsage(clientCpuBefore);
        const clientCpu = (clientCpuUsed.user + clientCpuUsed.system) / 1e6 / seconds;
        const rss = rssMiB(server.pid);
        const latencies: number[] = [];
        for (const { id, committedAt } of commits)
          for (const c of clients) {
            const at = c.arrivals.get(id);
            if (at === undefined) throw new Error(`a client missed row ${id}`);
            latencies.push(Math.max(0, at - committedAt));
          }
        for (const c of clients) c.close();
        await waitFor(async () => (await health(server)).eventStreams === 0, 30_000, "the streams to close");
        const row = {
          n,
          p50: percentile(latencies, 50),
          p95: percentile(latencies, 95),
          p99: percentile(latencies, 99),
          cpu,
          rss,
        };
        rows.push(row);
        console.log(
          `  ${mode.padEnd(10)} ${String(n).padStart(5)} clients: p50 ${ms(row.p50)}, p95 ${ms(row.p95)}, ` +
            `p99 ${ms(row.p99)}; server CPU ${(cpu * 100).toFixed(0)}%, RSS ${rss.toFixed(0)} MiB; clients' process CPU ${(clientCpu * 100).toFixed(0)}% (load ${load()})`,
        );
      }
      fanout.set(mode, rows);
    }

    if (PARTS.has("fanout") && args.compare !== "0") {
      console.log("fan-out, RUN_EVENTS_FANOUT=per-client (every stream reads each row itself):");
      const server = await startServer({ ...serverEnv, RUN_EVENTS_FANOUT: "per-client" }, appPort);
      try {
        await measureFanout(server, "per-client");
      } finally {
        await server.stop();
      }
    }

    const server = await startServer({ ...serverEnv, RUN_EVENTS_FANOUT: "shared" }, appPort);
    cleanups.push(() => server.stop());
    if (PARTS.has("fanout")) {
      console.log("fan-out, shared (one read per row per project):");
      await measureFanout(server, "shared");
    }

    let engine: EngineDevServer | undefined;
    if (PARTS.has("start") || PARTS.has("runs")) {
      const engineBin = await findOrBuildEngine();
      const ports = await Promise.all([1, 2, 3, 4].map(() => getPort({ host: "127.0.0.1" })));
      engine = await startEngineDevServer({
        bin: engineBin.bin,
        appUrl: `${server.url}/api/inngest`,
        ports: {
          api: enginePort,
          connectGateway: ports[0]!,
          connectGatewayGrpc: ports[1]!,
          connectExecutorGrpc: ports[2]!,
          debugApi: ports[3]!,
        },
        waitForFunctions: ["dyno-coding-agent"],
        tickMs: TICK_MS,
      });
      console.log(`\nengine: dev server, queue poll (--tick) ${TICK_MS ?? `${ENGINE_TICK_MS} (Dyno's default)`} ms`);
      cleanups.unshift(() => engine!.stop());
    }

    const terminal = ["complete", "failed", "stopped"];
    async function waitForRuns(ids: string[], timeoutMs: number) {
      await waitFor(
        async () => {
          const rows = await db.select({ status: runs.status }).from(runs).where(inArray(runs.id, ids));
          return rows.every((r) => terminal.includes(r.status));
        },
        timeoutMs,
        `${ids.length} runs to end`,
      );
    }

    // -------------------------------------------------------------------------------------------------------- (b)
    const startTimes: number[] = [];
    /** Prompt POST to its answer: the rest of a start is the engine's (the event to the first step call). */
    const answeredTimes: number[] = [];
    if (PARTS.has("start")) {
      console.log("\nrun start: prompt POST -> first event after `queued` on the project's stream");
      const one = async () => {
        const project = await newProject();
        const client = sseClient(`${server.url}/projects/${project.id}/events`, cookie, { keepTypes: true });
        await client.opened;
        let firstProgress: number | undefined;
        client.onEvent = (_id, type) => {
          if (type !== "queued" && firstProgress === undefined) firstProgress = performance.now();
        };
        const sentAt = performance.now();
        const response = await fetch(`${server.url}/projects/${project.id}?_data=routes%2Fprojects.%24projectId`, {
          method: "POST",
          headers: { Cookie: cookie, "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ intent: "prompt", prompt: "Say hello." }),
        });
        if (!response.ok) throw new Error(`prompt POST answered ${response.status}: ${await response.text()}`);
        answeredTimes.push(performance.now() - sentAt);
        await waitFor(() => firstProgress !== undefined, 30_000, "the first progress event");
        const [run] = await db.select({ id: runs.id }).from(runs).where(eq(runs.projectId, project.id));
        await waitForRuns([run!.id], 30_000);
        client.close();
        return firstProgress! - sentAt;
      };
      await one(); // warm-up
      answeredTimes.length = 0;
      for (let i = 0; i < STARTS; i++) startTimes.push(await one());
      console.log(
        `  ${STARTS} starts: p50 ${ms(median(startTimes))}, p95 ${ms(percentile(startTimes, 95))} ` +
          `(target p95 <= ${TARGETS.startP95} ms); of which the POST's answer p50 ${ms(median(answeredTimes))}, ` +
          `p95 ${ms(percentile(answeredTimes, 95))} (load ${load()})`,
      );
    }

    // -------------------------------------------------------------------------------------------------------- (c)
    const overheads = new Map<number, number>();
    if (PARTS.has("runs")) {
      console.log(
        `\nconcurrent runs: ${ITERATIONS}-iteration scripted sessions, model latency ${MODEL_LATENCY_MS} ms, ` +
          "one project each, all started at once",
      );
      console.log(
        "   runs | outside the model per iteration (median, p95) | ratio to 1 run | " +
          "CPU/iteration: app, engine, Postgres, bench (replay + clients) = all; cores busy | events",
      );
      let expectedTypes: string | undefined;
      for (const k of RUNS) {
        const projectsHere = await Promise.all(Array.from({ length: k }, () => newProject()));
        const clients = projectsHere.map((p) => sseClient(`${server.url}/projects/${p.id}/events`, cookie));
        await Promise.all(clients.map((c) => c.opened));
        const cpuBefore = cpuSeconds(server.pid);
        const engineCpuBefore = cpuSeconds(engine!.process.pid!);
        const postgresCpuBefore = postgresCpuSeconds();
        const benchCpuBefore = process.cpuUsage();
        const wallBefore = performance.now();
        const started = await Promise.all(
          projectsHere.map((p) =>
            startRun(db, {
              userId: user!.id,
              projectId: p.id,
              input: { prompt: "Write the pages." },
              model: "openai-compatible/bench-session",
            }),
          ),
        );
        const ids = started.map((r) => r.id);
        await waitForRuns(ids, 600_000);
        const finished = await db.select().from(runs).where(inArray(runs.id, ids));
        const failed = finished.filter((r) => r.status !== "complete");
        if (failed.length > 0)
          throw new Error(`${failed.length} of ${k} runs did not complete: ${failed[0]!.status} ${failed[0]!.error}`);
        const perIteration = finished.map(
          (r) =>
            (r.finishedAt!.getTime() - r.startedAt!.getTime() - ITERATIONS * MODEL_LATENCY_MS) /
            Math.max(r.iteration, 1),
        );
        // Nothing lost: the same number of rows per run, and every row reached its project's stream.
        const events = await db
          .select({ id: runEvents.id, runId: runEvents.runId, type: runEvents.type, writes: runEvents.writes })
          .from(runEvents)
          .where(inArray(runEvents.runId, ids));
        const typesOf = new Map<string, Map<string, number>>();
        for (const e of events) {
          const types = typesOf.get(e.runId) ?? new Map<string, number>();
          types.set(e.type, (types.get(e.type) ?? 0) + 1);
          typesOf.set(e.runId, types);
        }
        const signature = (types: Map<string, number>) =>
          [...types]
            .sort()
            .map(([type, n]) => `${type}:${n}`)
            .join(" ");
        expectedTypes ??= signature(typesOf.get(ids[0]!)!);
        const odd = ids.filter((id) => signature(typesOf.get(id)!) !== expectedTypes);
        const rewritten = events.filter((e) => e.writes > 1).length;
        const iterations = finished.reduce((sum, r) => sum + r.iteration, 0);
        const cpuPerIteration = ((cpuSeconds(server.pid) - cpuBefore) * 1000) / iterations;
        const engineCpuPerIteration = ((cpuSeconds(engine!.process.pid!) - engineCpuBefore) * 1000) / iterations;
        const postgresCpuPerIteration = ((postgresCpuSeconds() - postgresCpuBefore) * 1000) / iterations;
        const benchCpu = process.cpuUsage(benchCpuBefore);
        const benchCpuPerIteration = (benchCpu.user + benchCpu.system) / 1000 / iterations;
        const allCpuPerIteration =
          cpuPerIteration + engineCpuPerIteration + postgresCpuPerIteration + benchCpuPerIteration;
        // How much of the machine the part kept busy: near 1, iterations queue for a core.
        const coresBusy = (allCpuPerIteration * iterations) / (performance.now() - wallBefore) / os.cpus().length;
        const clientOfRun = new Map(started.map((r, i) => [r.id, clients[i]!]));
        await waitFor(
          () => events.every((e) => clientOfRun.get(e.runId)!.arrivals.has(e.id)),
          30_000,
          "every row at its project's stream",
        );
        for (const c of clients) c.close();
        const med = median(perIteration);
        overheads.set(k, med);
        const base = overheads.get(RUNS[0]!)!;
        console.log(
          `  ${String(k).padStart(5)} | ${`${ms(med)}, ${ms(percentile(perIteration, 95))}`.padStart(45)} | ` +
            `${(med / base).toFixed(2).padStart(14)} | ` +
            `${ms(cpuPerIteration)}, ${ms(engineCpuPerIteration)}, ${ms(postgresCpuPerIteration)}, ` +
            `${ms(benchCpuPerIteration)} = ${ms(allCpuPerIteration)}; ${(coresBusy * 100).toFixed(0)}% | ` +
            `${odd.length === 0 ? "same types and counts in every run" : `${odd.length} runs differ`}, ` +
            `${rewritten} rows written twice (a step re-ran), every row reached its stream (load ${load()})`,
        );
        for (const id of odd.slice(0, 3))
          console.log(`      run ${id}: ${signature(typesOf.get(id)!)}\n      expected: ${expectedTypes}`);
      }
    }

    // ------------------------------------------------------------------------------------------------- summary
    console.log("\nsummary (targets on a 2-core machine):");
    const shared = fanout.get("shared") ?? [];
    const perClient = fanout.get("per-client") ?? [];
    for (const row of shared) {
      const old = perClient.find((r) => r.n === row.n);
      const target = row.n === 500 ? TARGETS.p95At500 : row.n === 2000 ? TARGETS.p95At2000 : undefined;
      const one = shared.find((r) => r.n === 1);
      const per100 =
        one && row.n > 1
          ? `; per 100 clients: CPU +${(((row.cpu - one.cpu) * 100 * 100) / (row.n - 1)).toFixed(1)}%, ` +
            `RSS +${(((row.rss - one.rss) * 100) / (row.n - 1)).toFixed(1)} MiB`
          : "";
      console.log(
        `  fan-out ${String(row.n).padStart(4)} clients: p95 ${ms(row.p95)}` +
          (target ? ` (target <= ${target} ms: ${row.p95 <= target ? "met" : "MISSED"})` : "") +
          (old ? `; per-client p95 ${ms(old.p95)}, ratio ${(old.p95 / row.p95).toFixed(2)}x` : "") +
          per100,
      );
    }
    if (startTimes.length > 0) {
      const p95 = percentile(startTimes, 95);
      console.log(
        `  run start p95 ${ms(p95)} (target <= ${TARGETS.startP95} ms: ${p95 <= TARGETS.startP95 ? "met" : "MISSED"})`,
      );
    }
    if (overheads.has(1) && overheads.has(10)) {
      const ratio = overheads.get(10)! / overheads.get(1)!;
      console.log(
        `  overhead per iteration at 10 runs / 1 run: ${ratio.toFixed(2)}x ` +
          `(target <= ${TARGETS.overheadRatioAt10}x: ${ratio <= TARGETS.overheadRatioAt10 ? "met" : "MISSED"})`,
      );
    }
    console.log(`  load average at the end: ${load()}`);
    console.log(`\nthe server's log: ${SERVER_LOG}`);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
    await closeDatabase();
    await replay.close();
    await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
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
