import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { versions } from "../db/schema";
import { createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder } from "../tests/support/fixtures";
import { PACK_EVERY_VERSIONS, takeVersion } from "./record";
import { historyPath, ProjectHistory } from "./store";

let t: TestDatabase;
let root: string;
beforeAll(async () => {
  t = await createTestDatabase("pglite");
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-record-"));
});
afterAll(async () => {
  await t?.drop();
  await rm(root, { recursive: true, force: true });
});

const looseObjects = (history: ProjectHistory) =>
  Number(
    /^count: (\d+)$/m.exec(
      execFileSync("git", ["count-objects", "-v"], { env: { ...process.env, GIT_DIR: history.gitDir } }).toString(),
    )![1],
  );

describe("takeVersion", () => {
  it(`packs the history's loose objects when a project reaches every ${PACK_EVERY_VERSIONS}th version`, async () => {
    const { db } = t.database;
    const { project } = await createBuilder(db);
    const ws = path.join(root, "ws");
    await mkdir(ws, { recursive: true });
    const history = new ProjectHistory(historyPath(root, project.id), ws);
    const request = { projectId: project.id, runId: null, iteration: 0, kind: "restore" as const, message: "v" };

    await writeFile(path.join(ws, "a.txt"), "one\n");
    const first = await takeVersion(db, history, { ...request, mode: "commit" });
    expect(first?.number).toBe(1);
    expect(looseObjects(history)).toBeGreaterThan(0);
    // As if the project had taken its versions up to the one before the packing one.
    await db
      .update(versions)
      .set({ number: PACK_EVERY_VERSIONS - 1 })
      .where(eq(versions.id, first!.id));
    await writeFile(path.join(ws, "a.txt"), "two\n");
    const packing = await takeVersion(db, history, { ...request, mode: "commit" });
    expect(packing?.number).toBe(PACK_EVERY_VERSIONS);
    expect(looseObjects(history)).toBe(0);

    await writeFile(path.join(ws, "a.txt"), "three\n");
    const next = await takeVersion(db, history, { ...request, mode: "commit" });
    expect(next?.number).toBe(PACK_EVERY_VERSIONS + 1);
    // Not a packing one: its objects stay loose until the next.
    expect(looseObjects(history)).toBeGreaterThan(0);
    expect((await history.files(next!.commitSha)).map((f) => f.path)).toEqual(["a.txt"]);
  });
});
