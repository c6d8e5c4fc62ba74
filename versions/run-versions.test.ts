import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, runs, versions } from "../db/schema";
import { saveEntry } from "../inngest/agent/entries";
import { createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import { takeVersion } from "./record";
import { takeRunVersion, writeWithRunVersion } from "./run-versions";
import { historyPath, ProjectHistory } from "./store";

let t: TestDatabase;
let root: string;
beforeAll(async () => {
  t = await createTestDatabase("pglite");
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-run-versions-"));
});
afterAll(async () => {
  await t?.drop();
  await rm(root, { recursive: true, force: true });
});

const subject = (history: ProjectHistory, commit: string) =>
  execFileSync("git", ["log", "-1", "--format=%s", commit], { env: { ...process.env, GIT_DIR: history.gitDir } })
    .toString()
    .trim();

describe("takeRunVersion", () => {
  it("names the run's prompt in each version, reading it once per run (a run's prompt never changes)", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const ws = path.join(root, "ws");
    await mkdir(ws, { recursive: true });
    const history = new ProjectHistory(historyPath(root, project.id), ws);

    await writeFile(path.join(ws, "a.txt"), "one\n");
    const first = await takeRunVersion(db, run, { kind: "step", iteration: 1, tool: "write_file" }, () => history);
    expect(subject(history, first!.commitSha)).toMatch(/^Run [0-9a-f]{8}: test prompt/);
    // Were the row read again, the next version would name this.
    await db.update(runs).set({ prompt: "read again" }).where(eq(runs.id, run.id));
    await writeFile(path.join(ws, "a.txt"), "two\n");
    const second = await takeRunVersion(db, run, { kind: "step", iteration: 2, tool: "write_file" }, () => history);
    expect(second!.number).toBe(first!.number + 1);
    expect(subject(history, second!.commitSha)).toMatch(/^Run [0-9a-f]{8}: test prompt/);
  });
});

describe("writeWithRunVersion", () => {
  const entry = (run: { id: string; projectId: string }, note: string) => ({
    runId: run.id,
    projectId: run.projectId,
    iteration: 1,
    kind: "result" as const,
    payload: { note },
  });
  const resultOf = async (runId: string) =>
    (await t.database.db.select().from(agentEntries).where(eq(agentEntries.runId, runId)))[0]?.payload;
  /** A queued run of a new project, with an empty workspace folder. */
  const runWithWorkspace = async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const ws = path.join(root, `ws-${project.id}`);
    await mkdir(ws, { recursive: true });
    return { db, project, run, ws };
  };
  const versionsOf = (runId: string) => t.database.db.select().from(versions).where(eq(versions.runId, runId));

  it("commits the write and the version together, or neither, and a retry finds the version it took", async () => {
    const { db, project, run, ws } = await runWithWorkspace();
    const history = new ProjectHistory(historyPath(root, project.id), ws);
    const part = { kind: "step" as const, iteration: 1, tool: "write_file" };

    await writeFile(path.join(ws, "a.txt"), "one\n");
    // A write that fails: neither it nor a version is kept.
    await expect(
      writeWithRunVersion(
        db,
        run,
        part,
        () => history,
        async (tx) => {
          await saveEntry(tx, entry(run, "failed"));
          throw new Error("the step's save failed");
        },
      ),
    ).rejects.toThrow("the step's save failed");
    expect(await resultOf(run.id)).toBeUndefined();
    expect(await versionsOf(run.id)).toEqual([]);

    const saved = await writeWithRunVersion(
      db,
      run,
      part,
      () => history,
      async (tx) => {
        await saveEntry(tx, entry(run, "saved"));
        return "written";
      },
    );
    expect(saved.value).toBe("written");
    expect(saved.version).toMatchObject({ iteration: 1, kind: "step", filesAdded: 1 });
    expect(await resultOf(run.id)).toEqual({ note: "saved" });
    // The step again (a save retried after its connection dropped): the write again, the same version.
    const again = await writeWithRunVersion(
      db,
      run,
      part,
      () => history,
      async (tx) => {
        await saveEntry(tx, entry(run, "saved again"));
      },
    );
    expect(again.version?.id).toBe(saved.version!.id);
    expect(await versionsOf(run.id)).toHaveLength(1);
    expect(await resultOf(run.id)).toEqual({ note: "saved again" });
  });

  it("commits the write without a version when the history cannot be written", async () => {
    const { db, project, run, ws } = await runWithWorkspace();
    await writeFile(path.join(ws, "a.txt"), "one\n");
    // The history's folder is a file: git, and every file call under it, fail.
    const blocked = path.join(root, `blocked-${project.id}`);
    await writeFile(blocked, "not a folder");
    const history = new ProjectHistory(path.join(blocked, "history.git"), ws);
    const { version } = await writeWithRunVersion(
      db,
      run,
      { kind: "step", iteration: 1, tool: "write_file" },
      () => history,
      (tx) => saveEntry(tx, entry(run, "kept")),
    );
    expect(version).toBeNull();
    expect(await resultOf(run.id)).toEqual({ note: "kept" });
    expect(await versionsOf(run.id)).toEqual([]);
    // A take alone says so instead.
    await expect(
      takeVersion(db, history, {
        projectId: project.id,
        runId: run.id,
        iteration: 2,
        kind: "step",
        message: "m",
        mode: "changed",
      }),
    ).rejects.toThrow();
  });
});
