/**
 * npm run bench:versions — what versions cost (decision 026).
 *
 * 1. Per changing step, on bench:agent's session (29 tool steps: a file
 *    written every other step, a command every fifth): the time a step spends
 *    taking its version, git alone and with its row and run event (embedded
 *    PGlite), beside the session's own step time at 0 ms model latency.
 * 2. The same on a workspace of 2,000 files, one file changed per step.
 * 3. Restoring 2,000 files: to an empty workspace, and from one where every
 *    file differs.
 *
 * Figures are medians and 90th percentiles of several runs, printed side by
 * side; nothing here asserts a time. Options: --reps N (default 20).
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createDatabase } from "../db/client";
import { projects, runs, users } from "../db/schema";
import { takeVersion } from "../versions/record";
import { historyPath, ProjectHistory } from "../versions/store";

const { values: args } = parseArgs({ options: { reps: { type: "string", default: "20" } } });
const REPS = Number(args.reps);

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
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
  const database = createDatabase({ pglite: path.join(root, "db") });
  await database.migrate();
  const { db } = database;
  const [user] = await db
    .insert(users)
    .values({ email: `bench-${randomUUID()}@example.test`, passwordHash: "!" })
    .returning();

  async function project() {
    const [p] = await db.insert(projects).values({ userId: user!.id, title: "bench" }).returning();
    const [run] = await db
      .insert(runs)
      .values({ projectId: p!.id, userId: user!.id, prompt: "bench", maxIterations: 50 })
      .returning();
    const ws = path.join(root, "workspaces", p!.id);
    mkdirSync(ws, { recursive: true });
    return { projectId: p!.id, runId: run!.id, ws, history: new ProjectHistory(historyPath(root, p!.id), ws) };
  }

  try {
    // 1 + 2: the session's changing steps, on a fresh and on a 2,000-file workspace.
    for (const baseFiles of [0, 2000]) {
      const gitOnly: number[] = [];
      const withRow: number[] = [];
      for (let rep = 0; rep < Math.max(1, Math.floor(REPS / 5)); rep++) {
        const p = await project();
        writeFiles(p.ws, baseFiles, "base");
        let parent: { commit: string; tree: string } | null = null;
        const first = await p.history.take({ parent, message: "base", mode: "commit" });
        parent = { commit: first.commit!, tree: first.tree };
        await takeVersion(db, p.history, {
          projectId: p.projectId,
          runId: p.runId,
          iteration: 0,
          kind: "run-start",
          message: "start",
          mode: "commit",
        });
        for (let i = 1; i < 30; i++) {
          const changing = i % 5 === 0 || i % 2 === 1;
          if (!changing) continue;
          writeFileSync(path.join(p.ws, `page-${i}.html`), `<h1>Page ${i}</h1>\n`.repeat(20));
          if (rep % 2 === 0) {
            const [ms, taken] = await time(() => p.history.take({ parent, message: `step ${i}`, mode: "changed" }));
            gitOnly.push(ms);
            if (taken.commit) parent = { commit: taken.commit, tree: taken.tree };
          } else {
            const [ms] = await time(() =>
              takeVersion(db, p.history, {
                projectId: p.projectId,
                runId: p.runId,
                iteration: i,
                kind: "step",
                tool: "write_file",
                message: `step ${i}`,
                mode: "changed",
              }),
            );
            withRow.push(ms);
          }
        }
      }
      console.log(
        `\nA version per changing step, workspace of ${baseFiles || "a few"} files (${gitOnly.length + withRow.length} steps):`,
      );
      line("git alone (ls-files, stage, tree, commit, diff)", gitOnly);
      line("git + versions row + run event (PGlite)", withRow);
    }

    // 3: restore 2,000 files.
    const toEmpty: number[] = [];
    const allChanged: number[] = [];
    const reps = Math.max(2, Math.floor(REPS / 4));
    for (let rep = 0; rep < reps; rep++) {
      const p = await project();
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
    console.log(`\n(${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(2)} while measuring)`);
  } finally {
    await database.close();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
