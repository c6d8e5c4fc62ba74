/**
 * npm run bench:versions — what versions cost (decision 026).
 *
 * 0. The overhead on bench:agent's session itself: the 30-iteration session
 *    through the in-process loop (the step bodies the durable function runs,
 *    the real BAML client against the replay stand-in, the local sandbox),
 *    with the project's history for its steps and without it, in turn; the
 *    difference per changing step (the run's end version is in both).
 * 1. Per changing step, on bench:agent's session (29 tool steps: a file
 *    written every other step, a command every fifth): the time a step spends
 *    taking its version, the history alone and with its row and run event
 *    (embedded PGlite). A write_file step's version reads only its file, in
 *    this process (objects.ts); a command's reads the paths the feed of the
 *    workspace's changes names (workspace-watch.ts; the command's change is
 *    made by a shell of its own, as a command's is). Beside them: the same
 *    without the feed (a walk of the workspace, or git's commands over 1,000
 *    files) and with git's commands alone.
 * 2. The same on a workspace of 2,000 files, one file changed per step.
 * 3. Restoring 2,000 files: to an empty workspace, and from one where every
 *    file differs.
 * 4. The history's size bound on 150 versions of a 2,000-file workspace: the
 *    check after a run's end, and a prune.
 *
 * Figures are medians and 90th percentiles of several runs, printed side by
 * side; nothing here asserts a time. Options: --reps N (default 20), --sections
 * 0,3 (only those). With
 * DATABASE_URL, the rows are also written to Postgres (a database of its own,
 * dropped at the end).
 */
import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { createDatabase, type Database, type Db } from "../db/client";
import { projects, runs, users, versions } from "../db/schema";
import { startReplayServer } from "../model-replay/server";
import { boundHistory, describePrune } from "../versions/prune";
import { takeVersion } from "../versions/record";
import { historyPath, ProjectHistory } from "../versions/store";
import { benchSession } from "./lib/bench-session";

const { values: args } = parseArgs({
  options: { reps: { type: "string", default: "20" }, sections: { type: "string", default: "0,1,2,3,4" } },
});
const REPS = Number(args.reps);
/** --sections 0,3: only those sections (numbered as above; 1 and 2 run together). */
const SECTIONS = new Set(args.sections.split(",").map((s) => Number(s.trim())));

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
/** Versions of the history the bound's figures are measured on. */
const PRUNE_VERSIONS = 150;
const fmt = (x: number) => `${x.toFixed(1)} ms`;
const line = (label: string, xs: number[]) =>
  console.log(`  ${label.padEnd(52)} median ${fmt(pct(xs, 0.5)).padStart(9)}   p90 ${fmt(pct(xs, 0.9)).padStart(9)}`);

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const value = await fn();
  return [performance.now() - start, value];
}

function writeFiles(ws: string, count: number, tag: string) {
  for (let i = 0; i < count; i++) {
    const dir = path.join(ws, "src", `m${i % 40}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `file-${i}.ts`), `export const value${i} = "${tag}";\n`.repeat(8));
  }
}

async function main() {
  const root = mkdtempSync(path.join(os.tmpdir(), "dyno-bench-versions-"));
  const pglite = createDatabase({ pglite: path.join(root, "db") });
  const databases: { label: string; database: Database }[] = [{ label: "PGlite", database: pglite }];
  let dropDatabase = async () => {};
  if (process.env.DATABASE_URL) {
    // A database of its own on the same server, dropped at the end.
    const name = `dyno_bench_versions_${process.pid}`;
    const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const url = new URL(process.env.DATABASE_URL);
    url.pathname = `/${name}`;
    databases.push({ label: "Postgres", database: createDatabase({ url: url.toString() }) });
    dropDatabase = async () => {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    };
  }
  for (const { database } of databases) await database.migrate();

  /** "git": every take by git's commands (how a command's version was taken before the walk); "no feed": no watch. */
  async function project(db: Db, how: "quick" | "no feed" | "git" = "quick") {
    const [user] = await db
      .insert(users)
      .values({ email: `bench-${randomUUID()}@example.test`, passwordHash: "!" })
      .returning();
    const [p] = await db.insert(projects).values({ userId: user!.id, title: "bench" }).returning();
    const [run] = await db
      .insert(runs)
      .values({ projectId: p!.id, userId: user!.id, prompt: "bench", maxIterations: 50 })
      .returning();
    const ws = path.join(root, "workspaces", p!.id);
    mkdirSync(ws, { recursive: true });
    return {
      projectId: p!.id,
      runId: run!.id,
      ws,
      history: new ProjectHistory(
        historyPath(root, p!.id),
        ws,
        undefined,
        how !== "git",
        undefined,
        how === "quick" ? undefined : null,
      ),
    };
  }

  const historyOnly = (kind: string) => kind === "history" || kind === "no feed" || kind === "git";

  try {
    if (SECTIONS.has(0)) await sessionOverhead(root, databases);
    // 1 + 2: the session's changing steps, on a fresh and on a 2,000-file workspace; each rep is the history alone,
    // or the history with its row and event on one of the databases, in turn.
    for (const baseFiles of SECTIONS.has(1) || SECTIONS.has(2) ? [0, 2000] : []) {
      const kinds = ["history", "no feed", "git", ...databases.map((d) => d.label)];
      const times = new Map(
        kinds.map((kind) => [kind, { writes: [] as number[], commands: [] as number[], starts: [] as number[] }]),
      );
      // Sessions in turn, kind by kind: each kind gets REPS / 10 of them (a session has 15 writes and 2 commands).
      for (let rep = 0; rep < kinds.length * Math.max(1, Math.floor(REPS / 10)); rep++) {
        const kind = kinds[rep % kinds.length]!;
        const db = (databases.find((d) => d.label === kind) ?? databases[0]!).database.db;
        const p = await project(db, kind === "git" || kind === "no feed" ? kind : "quick");
        writeFiles(p.ws, baseFiles, "base");
        let parent: { commit: string; tree: string } | null = null;
        const first = await p.history.take({ parent, message: "base", mode: "commit" });
        parent = { commit: first.commit!, tree: first.tree };
        if (!historyOnly(kind))
          // The project's history so far, as a version row, so the run's start has a version before it.
          await db.insert(versions).values({
            projectId: p.projectId,
            number: 1,
            kind: "restore",
            commitSha: first.commit!,
            treeSha: first.tree,
          });
        // The run's start: this process's first walk of the workspace, which reads every file once.
        await new Promise((resolve) => setTimeout(resolve, 150)); // past the walk's margin for files written just now
        writeFileSync(path.join(p.ws, "start.txt"), "a run starts\n");
        const [startMs, started] = await time<{ commitSha: string; treeSha: string } | null>(async () => {
          if (!historyOnly(kind))
            return takeVersion(db, p.history, {
              projectId: p.projectId,
              runId: p.runId,
              iteration: 0,
              kind: "run-start",
              message: "start",
              mode: "commit",
            });
          const taken = await p.history.take({ parent, message: "start", mode: "commit" });
          return { commitSha: taken.commit!, treeSha: taken.tree };
        });
        times.get(kind)!.starts.push(startMs);
        if (started) parent = { commit: started.commitSha, tree: started.treeSha };
        for (let i = 1; i < 30; i++) {
          const changing = i % 5 === 0 || i % 2 === 1;
          if (!changing) continue;
          const file = `page-${i}.html`;
          const content = `<h1>Page ${i}</h1>\n`.repeat(20);
          // Odd steps write a file (its version is told which); the others are commands, whose shell writes it.
          const write = i % 2 === 1;
          if (write) writeFileSync(path.join(p.ws, file), content);
          else execFileSync("/bin/sh", ["-c", 'printf "%s" "$1" > "$2"', "sh", content, path.join(p.ws, file)]);
          const files = write ? [file] : undefined;
          const into = times.get(kind)!;
          if (historyOnly(kind)) {
            const [ms, taken] = await time(() =>
              p.history.take({ parent, message: `step ${i}`, mode: "changed", files }),
            );
            (write ? into.writes : into.commands).push(ms);
            if (taken.commit) parent = { commit: taken.commit, tree: taken.tree };
          } else {
            const [ms] = await time(() =>
              takeVersion(db, p.history, {
                projectId: p.projectId,
                runId: p.runId,
                iteration: i,
                kind: "step",
                tool: write ? "write_file" : "run_command",
                message: `step ${i}`,
                mode: "changed",
                files,
              }),
            );
            (write ? into.writes : into.commands).push(ms);
          }
        }
      }
      const steps = [...times.values()].reduce((sum, t) => sum + t.writes.length + t.commands.length, 0);
      console.log(`\nA version per changing step, workspace of ${baseFiles || "a few"} files (${steps} steps):`);
      line("write_file step: its file, in process", times.get("history")!.writes);
      for (const { label } of databases) line(`  + versions row + run event (${label})`, times.get(label)!.writes);
      line("command step: the paths the feed names, in process", times.get("history")!.commands);
      for (const { label } of databases) line(`  + versions row + run event (${label})`, times.get(label)!.commands);
      const withoutFeed = baseFiles > 1000 ? "git's commands (over 1,000 files)" : "a walk of the workspace";
      line(`command step without the feed: ${withoutFeed}`, times.get("no feed")!.commands);
      line("command step: git's commands (before the walk)", times.get("git")!.commands);
      line(
        `run start: ${baseFiles > 1000 ? "git's commands (over 1,000 files)" : "the process's first walk (reads every file)"}, the feed starts`,
        times.get("history")!.starts,
      );
      line("run start: git's commands", times.get("git")!.starts);
    }

    if (SECTIONS.has(3)) {
      // 3: restore 2,000 files.
      const toEmpty: number[] = [];
      const allChanged: number[] = [];
      const reps = Math.max(2, Math.floor(REPS / 4));
      for (let rep = 0; rep < reps; rep++) {
        const p = await project(pglite.db);
        writeFiles(p.ws, 2000, "one");
        const one = await p.history.take({ parent: null, message: "one", mode: "commit" });
        writeFiles(p.ws, 2000, "two");
        const two = await p.history.take({
          parent: { commit: one.commit!, tree: one.tree },
          message: "two",
          mode: "commit",
        });
        const [changedMs] = await time(() => p.history.restore(one.commit!));
        allChanged.push(changedMs);
        rmSync(path.join(p.ws, "src"), { recursive: true });
        const [emptyMs] = await time(() => p.history.restore(two.commit!));
        toEmpty.push(emptyMs);
      }
      console.log(`\nRestoring a version of 2,000 files (${reps} runs each):`);
      line("every file differs (2,000 rewritten)", allChanged);
      line("into an empty workspace (2,000 written)", toEmpty);
    }
    if (SECTIONS.has(4)) {
      // 4: the size bound: its check after a run's end (under the bound), and a prune of the oldest half.
      const checks: number[] = [];
      const prunes: number[] = [];
      const sizes: string[] = [];
      for (let rep = 0; rep < Math.max(1, Math.floor(REPS / 10)); rep++) {
        const p = await project(pglite.db);
        writeFiles(p.ws, 2000, "base");
        for (let n = 1; n <= PRUNE_VERSIONS; n++) {
          for (let f = 0; f < 5; f++) {
            // 50 files rewritten in turn with text that does not delta against what they held: each version adds
            // ~8 KB to the history that only older versions reach.
            const file = (n * 5 + f) % 50;
            writeFileSync(
              path.join(p.ws, "src", `m${file % 40}`, `file-${file}.ts`),
              `export const data = "${randomBytes(1500).toString("hex")}";\n`,
            );
          }
          await takeVersion(pglite.db, p.history, {
            projectId: p.projectId,
            runId: n === PRUNE_VERSIONS ? p.runId : null,
            iteration: n,
            kind: n === PRUNE_VERSIONS ? "run-end" : "restore",
            mode: "commit",
            message: `v${n}`,
          });
        }
        // Packed first, so the prune below has to drop versions (loose objects alone can make a history look big).
        await p.history.repackAll();
        const size = await p.history.sizeBytes();
        const under = new ProjectHistory(p.history.gitDir, p.ws, undefined, true, size * 10);
        const [checkMs, none] = await time(() => boundHistory(pglite.db, under, p.projectId));
        if (none) throw new Error("under the bound, nothing should prune");
        checks.push(checkMs);
        // The same history under a bound just below its size.
        const bounded = new ProjectHistory(p.history.gitDir, p.ws, undefined, true, Math.floor(size * 0.9));
        const [pruneMs, outcome] = await time(() => boundHistory(pglite.db, bounded, p.projectId));
        prunes.push(pruneMs);
        sizes.push(outcome ? describePrune(outcome) : "nothing pruned");
      }
      console.log(`\nThe history's size bound, ${PRUNE_VERSIONS} versions of a 2,000-file workspace:`);
      line("check after a run's end, under the bound", checks);
      line("prune to 75% of a bound 10% under the (packed) size", prunes);
      for (const size of new Set(sizes)) console.log(`  (${size})`);
    }
    console.log(`\n(${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(2)} while measuring)`);
  } finally {
    for (const { database } of databases) await database.close();
    await dropDatabase();
    rmSync(root, { recursive: true, force: true });
  }
}

/** bench:agent's session: 30 iterations, of which these steps can change files (writes and commands). */
const SESSION_ITERATIONS = 30;
const SESSION_CHANGING_STEPS = benchSession("count", SESSION_ITERATIONS).turns.filter((turn) =>
  ["write_file", "run_command"].includes(String((turn.reply as { tool?: string }).tool)),
).length;

/** 0: the session in process with and without versions, alternating, on each database. */
async function sessionOverhead(root: string, databases: { label: string; database: Database }[]) {
  const replay = await startReplayServer({ scripts: [], host: "127.0.0.1", port: 0 });
  Object.assign(process.env, {
    DYNO_DATA_DIR: path.join(root, "data"),
    AGENT_BASE_URL: replay.url,
    BAML_LOG: process.env.BAML_LOG ?? "warn",
    AGENT_MAX_ITERATIONS: "100",
  });
  const { env } = await import("../app/env.server");
  const { recordPrompt } = await import("../app/models/runs.server");
  const { createAgentContext } = await import("../inngest/agent/context");
  const { runAgentLoop } = await import("../inngest/agent/loop");
  const sessions = Math.max(3, Math.floor(REPS / 4));
  console.log(
    `\nbench:agent's session (${SESSION_ITERATIONS} iterations, ${SESSION_CHANGING_STEPS} steps that can change files) in process, ` +
      `${sessions} sessions each, with versions and without, in turn:`,
  );
  let scripts = 0;
  try {
    for (const { label, database } of databases) {
      const { db } = database;
      const withVersions = createAgentContext(env(), database);
      const without = { ...withVersions, history: () => null };
      const [user] = await db
        .insert(users)
        .values({ email: `bench-session-${randomUUID()}@example.test`, passwordHash: "!" })
        .returning();
      /** One session; each act step's time goes to `acts` by its tool (the script's write_file or run_command). */
      const session = async (agent: typeof withVersions, acts: { writes: number[]; commands: number[] }) => {
        const script = `bench-versions-${++scripts}`;
        const turns = benchSession(script, SESSION_ITERATIONS);
        replay.addScript(turns);
        const [p] = await db.insert(projects).values({ userId: user!.id, title: "bench" }).returning();
        const run = await recordPrompt(db, {
          userId: user!.id,
          projectId: p!.id,
          input: { prompt: "Write the pages." },
          model: `openai-compatible/${script}`,
        });
        const [ms, outcome] = await time(() =>
          runAgentLoop(agent, run.id, async (id, fn) => {
            const act = /^act-(\d+)$/.exec(id);
            if (!act) return fn();
            const tool = (turns.turns[Number(act[1]) - 1]?.reply as { tool?: string } | undefined)?.tool;
            const [stepMs, value] = await time(fn);
            if (tool === "write_file") acts.writes.push(stepMs);
            if (tool === "run_command") acts.commands.push(stepMs);
            return value;
          }),
        );
        if (!("iterations" in outcome) || outcome.iterations !== SESSION_ITERATIONS)
          throw new Error(`the session ended early: ${JSON.stringify(outcome)}`);
        return { ms, versions: (await db.select().from(versions).where(eq(versions.runId, run.id))).length };
      };
      const warm = { writes: [], commands: [] };
      await session(withVersions, warm); // warm-up: BAML's runtime, the sandbox probe, the statements' first plans
      await session(without, warm);
      const on = { sessions: [] as number[], writes: [] as number[], commands: [] as number[] };
      const off = { sessions: [] as number[], writes: [] as number[], commands: [] as number[] };
      let taken = 0;
      for (let i = 0; i < sessions; i++) {
        const a = await session(withVersions, on);
        on.sessions.push(a.ms);
        taken = a.versions;
        const b = await session(without, off);
        // The run's end takes its version from the process's configuration (run-lifecycle.ts): in both sessions.
        if (b.versions > 1) throw new Error(`a session without the agent's history took ${b.versions} versions`);
        off.sessions.push(b.ms);
      }
      const median = (xs: number[]) => pct(xs, 0.5);
      // Steps are pushed in the script's order, so on[kind][j] and off[kind][j] are the same step of paired sessions.
      const differs = (kind: "writes" | "commands") =>
        `median ${fmt(median(on[kind]))} with, ${fmt(median(off[kind]))} without: ` +
        `${fmt(median(on[kind]) - median(off[kind]))} (paired: ${fmt(median(on[kind].map((x, j) => x - off[kind][j]!)))})`;
      console.log(`  ${label} (${taken} versions a session):`);
      console.log(`    write_file act step (${on.writes.length} of each)    ${differs("writes")}`);
      console.log(`    run_command act step (${on.commands.length} of each)   ${differs("commands")}`);
      console.log(
        `    session                          median ${fmt(median(on.sessions))} with, ${fmt(median(off.sessions))} without: ` +
          `${fmt((median(on.sessions) - median(off.sessions)) / SESSION_CHANGING_STEPS)} per changing step`,
      );
    }
  } finally {
    await replay.close();
    // Each session's project started an egress proxy for its commands; left listening, they keep this process alive.
    const { closeEgressProxies } = await import("../sandbox/egress");
    await closeEgressProxies();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
