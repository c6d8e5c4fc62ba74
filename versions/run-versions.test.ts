import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runs } from "../db/schema";
import { createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import { takeRunVersion } from "./run-versions";
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
