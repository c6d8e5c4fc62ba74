import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runs, type Version } from "../db/schema";
import { createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import { boundHistory, MIN_KEPT_VERSIONS, oldestKeptNumber } from "./prune";
import { takeVersion } from "./record";
import { restoreVersion, RestoreRefusedError } from "./restore";
import { historyPath, ProjectHistory } from "./store";

let t: TestDatabase;
let root: string;
beforeAll(async () => {
  t = await createTestDatabase("pglite");
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-prune-"));
});
afterAll(async () => {
  await t?.drop();
  await rm(root, { recursive: true, force: true });
});

const gitIn = (history: ProjectHistory, args: string[]) =>
  spawnSync("git", args, { env: { ...process.env, GIT_DIR: history.gitDir }, encoding: "utf8" });
const blobOf = (history: ProjectHistory, commit: string, file: string) =>
  execFileSync("git", ["rev-parse", `${commit}:${file}`], { env: { ...process.env, GIT_DIR: history.gitDir } })
    .toString()
    .trim();
const hasPath = (file: string) => existsSync(file);
const hasObject = (history: ProjectHistory, sha: string) => gitIn(history, ["cat-file", "-e", sha]).status === 0;

/** A workspace of one small text file and one incompressible file that every version replaces. */
async function setUp(bound: number, bytesPerVersion = 20 * 1024) {
  const { db } = t.database;
  const { user, project } = await createBuilder(db);
  const ws = path.join(root, project.id);
  await mkdir(ws, { recursive: true });
  const history = new ProjectHistory(historyPath(root, project.id), ws, 1024 * 1024, true, bound);
  const take = async (runId: string | null, iteration: number, kind: Version["kind"]) => {
    await writeFile(path.join(ws, "notes.txt"), `version at ${iteration}\n`);
    await writeFile(path.join(ws, "blob.bin"), randomBytes(bytesPerVersion));
    return (await takeVersion(db, history, {
      projectId: project.id,
      runId,
      iteration,
      kind,
      mode: "commit",
      message: `${kind} ${iteration}`,
    }))!;
  };
  return { db, user, project, ws, history, take };
}

describe("the history's size bound", () => {
  it("prunes the oldest versions once over it: their files are gone, the kept ones and git's checks hold", async () => {
    // Each version adds ~20 KiB that does not compress; 60 of them are ~1.2 MiB against a 600 KiB bound. One run
    // made them all, so only pruning into it can bring the history under the bound.
    const { db, user, project, ws, history, take } = await setUp(600 * 1024);
    const older = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const taken: Version[] = [];
    for (let i = 1; i <= 59; i++) taken.push(await take(older.id, i, "step"));
    await db.update(runs).set({ status: "complete" }).where(eq(runs.id, older.id));
    // Nothing has pruned yet: only a run's end, a restore or a pack checks the size.
    expect(await history.oldestKept()).toBeNull();
    const firstBlob = blobOf(history, taken[0]!.commitSha, "blob.bin");
    expect(hasObject(history, firstBlob)).toBe(true);

    taken.push(await take(older.id, 60, "run-end"));
    const oldest = await oldestKeptNumber(db, history, project.id);
    expect(oldest).toBeGreaterThan(1);
    expect(oldest).toBeLessThanOrEqual(60 - MIN_KEPT_VERSIONS + 1);
    expect(await history.sizeBytes()).toBeLessThanOrEqual(600 * 1024);
    // A pruned version's own file is gone from the repository, not only hidden.
    expect(hasObject(history, firstBlob)).toBe(false);
    expect(gitIn(history, ["fsck", "--no-dangling", "--no-progress"]).status).toBe(0);
    expect(gitIn(history, ["rev-list", "--count", "refs/heads/versions"]).stdout.trim()).toBe(String(60 - oldest! + 1));

    // The oldest kept version restores to exactly its files; a pruned one is refused, and the workspace untouched.
    const kept = taken[oldest! - 1]!;
    const keptBlob = await readFile(path.join(ws, "blob.bin"));
    await expect(restoreVersion(db, history, { projectId: project.id, versionId: taken[0]!.id })).rejects.toThrow(
      RestoreRefusedError,
    );
    await expect(restoreVersion(db, history, { projectId: project.id, versionId: taken[0]!.id })).rejects.toThrow(
      /pruned/,
    );
    expect(await readFile(path.join(ws, "blob.bin"))).toEqual(keptBlob);
    await restoreVersion(db, history, { projectId: project.id, versionId: kept.id });
    expect(await readFile(path.join(ws, "notes.txt"), "utf8")).toBe(`version at ${oldest}\n`);
    expect(blobOf(history, "refs/heads/versions", "blob.bin")).toBe(blobOf(history, kept.commitSha, "blob.bin"));

    // Takes go on after a prune (the walk read everything again), and the repository stays whole.
    const after = await take(null, 0, "restore");
    expect(after.number).toBe(62);
    expect((await history.files(after.commitSha)).map((f) => f.path)).toEqual(["blob.bin", "notes.txt"]);
    expect(gitIn(history, ["fsck", "--no-dangling", "--no-progress"]).status).toBe(0);
  });

  it("keeps the newest run from the version it started at while pruning older runs is enough", async () => {
    // 40 KiB a version: the first run's 10 are ~400 KiB, the newest run's 31 ~1.2 MiB, against a ~1.4 MiB bound.
    const { db, user, project, take, history } = await setUp(1450 * 1024, 40 * 1024);
    const first = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    for (let i = 1; i <= 10; i++) await take(first.id, i, "step");
    const newest = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const start = await take(newest.id, 0, "run-start");
    for (let i = 1; i <= 29; i++) await take(newest.id, i, "step");
    await take(newest.id, 30, "run-end");
    // Under the bound, though over the target a prune aims for: the newest run's start was not crossed.
    expect(await oldestKeptNumber(db, history, project.id)).toBe(start.number);
    const size = await history.sizeBytes();
    expect(size).toBeLessThanOrEqual(1450 * 1024);
    expect(size).toBeGreaterThan(1450 * 1024 * 0.75);
  });

  it("does not repack at every run's end a history whose unprunable versions are over the bound", async () => {
    // 20 KiB a version against a 100 KiB bound: the newest 20 versions alone are ~400 KiB.
    const { db, user, project, take, history } = await setUp(100 * 1024);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    for (let i = 1; i <= 30; i++) await take(run.id, i, "step");
    const repacks = vi.spyOn(history, "repackAll");
    await take(run.id, 31, "run-end");
    expect(repacks).toHaveBeenCalled();
    expect(await oldestKeptNumber(db, history, project.id)).toBe(31 - MIN_KEPT_VERSIONS + 1);
    expect(await history.sizeBytes()).toBeGreaterThan(100 * 1024);
    // The next restores find it still over, but grown by less than a tenth of the bound: no repack.
    repacks.mockClear();
    await writeFile(path.join(history.workTree, "small.txt"), "a few bytes\n");
    expect(await boundHistory(db, history, project.id)).toBeNull();
    expect(repacks).not.toHaveBeenCalled();
    // Grown by more (two more versions of 20 KiB): tried again, and the bound moves on with the newest 20.
    await take(null, 32, "restore");
    await take(null, 33, "restore");
    expect(repacks).toHaveBeenCalled();
    expect(await oldestKeptNumber(db, history, project.id)).toBe(33 - MIN_KEPT_VERSIONS + 1);
  });

  it("on PGlite holds no transaction through the repack, so the app's queries go on, while takes wait for it", async () => {
    // 25 versions of 20 KiB are under 600 KiB; the 26th brings 300 KiB more, and its take's check prunes.
    const { db, project, take, history } = await setUp(600 * 1024);
    for (let i = 1; i <= 25; i++) await take(null, i, "restore");
    await writeFile(path.join(history.workTree, "more.bin"), randomBytes(300 * 1024));
    // The prune's repack is held until the query below has answered (or, were it stuck behind the prune, 5 s).
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const repack = history.repackAll.bind(history);
    const repacks = vi.spyOn(history, "repackAll").mockImplementation(async () => {
      await gate;
      await repack();
    });
    const order: string[] = [];
    const pruning = take(null, 26, "restore").then(() => order.push("take that pruned"));
    await vi.waitFor(() => expect(repacks).toHaveBeenCalled(), { timeout: 10_000 });
    const taking = take(null, 27, "restore").then(() => order.push("next take"));
    const breaker = setTimeout(open, 5_000);
    await db.select().from(runs).limit(1);
    order.push("query");
    open();
    clearTimeout(breaker);
    await Promise.all([pruning, taking]);
    expect(order).toEqual(["query", "take that pruned", "next take"]);
    expect(await oldestKeptNumber(db, history, project.id)).toBeGreaterThan(1);
    expect(gitIn(history, ["fsck", "--no-dangling", "--no-progress"]).status).toBe(0);
  });

  it("under the bound does nothing, and deleting the history deletes the folder", async () => {
    const { db, project, take, history } = await setUp(64 * 1024 * 1024);
    for (let i = 1; i <= 3; i++) await take(null, i, "restore");
    expect(await boundHistory(db, history, project.id)).toBeNull();
    expect(await history.oldestKept()).toBeNull();
    // What a killed writer leaves (an object written aside, a pack half written) goes at the next full repack.
    const strays = [path.join("objects", "dyno-tmp-123-abcdef"), path.join("objects", "pack", ".tmp-9-pack-x.pack")];
    for (const stray of strays) await writeFile(path.join(history.gitDir, stray), randomBytes(64 * 1024));
    await history.repackAll();
    for (const stray of strays) expect(hasPath(path.join(history.gitDir, stray))).toBe(false);
    expect(gitIn(history, ["fsck", "--no-dangling", "--no-progress"]).status).toBe(0);
    await history.destroy();
    expect(await readdir(path.join(root, "history"))).not.toContain(`${project.id}.git`);
  });
});
