/**
 * A take's statements go out pipelined (record.ts): the reads that follow the project's lock must still see what
 * the lock's previous holder committed. Takes racing on one project (a run's step, its cancel handler, a second
 * process) make one chain, numbered without gaps, and a retried take finds its row.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runEvents, versions } from "../db/schema";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import { PACK_EVERY_VERSIONS, takeVersion } from "./record";
import { historyPath, ProjectHistory } from "./store";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-record-race-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe.each(availableDrivers())("takes racing on one project (%s)", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it("make one chain of versions numbered without gaps, each run event naming its row, and a retry finds its row", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const ws = path.join(root, driver, project.id);
    await mkdir(ws, { recursive: true });
    await writeFile(path.join(ws, "a.txt"), "a\n");
    // Two histories of one project, as two processes have: neither knows what the other took.
    const histories = [0, 1].map(() => new ProjectHistory(historyPath(path.join(root, driver), project.id), ws));
    const take = (iteration: number) =>
      takeVersion(db, histories[iteration % 2]!, {
        projectId: project.id,
        runId: run.id,
        iteration,
        kind: "step",
        tool: "run_command",
        message: `step ${iteration}\n`,
        mode: "commit",
      });
    const first = await Promise.all([1, 2, 3, 4, 5, 6].map(take));
    // The same steps again, as retries: each finds the row it took.
    const again = await Promise.all([1, 2, 3, 4, 5, 6].map(take));
    expect(again.map((v) => v?.id)).toEqual(first.map((v) => v?.id));

    const rows = await db
      .select()
      .from(versions)
      .where(eq(versions.projectId, project.id))
      .orderBy(asc(versions.number));
    expect(rows.map((v) => v.number)).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i]!.parentSha).toBe(rows[i - 1]!.commitSha);
      // Git's own parent of each commit is the version before it.
      const parent = execFileSync("git", ["rev-parse", `${rows[i]!.commitSha}^`], {
        env: { ...process.env, GIT_DIR: histories[0]!.gitDir },
      });
      expect(parent.toString().trim()).toBe(rows[i - 1]!.commitSha);
    }
    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    const named = events.filter((e) => e.type === "version").map((e) => (e.data as { versionId: string }).versionId);
    expect(named.sort()).toEqual(rows.map((v) => v.id).sort());
  });
  it(`packs at every ${PACK_EVERY_VERSIONS}th version with the project's versions held: a take (or a prune) waits for it`, async () => {
    const { db } = t.database;
    const { project } = await createBuilder(db);
    const ws = path.join(root, driver, `pack-${project.id}`);
    await mkdir(ws, { recursive: true });
    const history = new ProjectHistory(historyPath(path.join(root, driver), project.id), ws);
    const request = { projectId: project.id, runId: null, iteration: 0, kind: "restore" as const, message: "v" };
    await writeFile(path.join(ws, "a.txt"), "one\n");
    const first = await takeVersion(db, history, { ...request, mode: "commit" });
    // As if the project had taken its versions up to the one before the packing one.
    await db
      .update(versions)
      .set({ number: PACK_EVERY_VERSIONS - 1 })
      .where(eq(versions.id, first!.id));

    const order: string[] = [];
    let during: Promise<unknown> | undefined;
    const pack = history.pack.bind(history);
    history.pack = async () => {
      // Another take of the project while the pack runs: it must not get in before the pack ends.
      during = takeVersion(db, history, { ...request, mode: "commit", message: "during" }).then(() =>
        order.push("take"),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      await pack();
      order.push("pack");
    };
    await writeFile(path.join(ws, "a.txt"), "two\n");
    const packing = await takeVersion(db, history, { ...request, mode: "commit" });
    expect(packing?.number).toBe(PACK_EVERY_VERSIONS);
    await during;
    expect(order).toEqual(["pack", "take"]);
    const numbers = await db
      .select({ number: versions.number })
      .from(versions)
      .where(eq(versions.projectId, project.id))
      .orderBy(asc(versions.number));
    expect(numbers.map((v) => v.number)).toEqual([
      PACK_EVERY_VERSIONS - 1,
      PACK_EVERY_VERSIONS,
      PACK_EVERY_VERSIONS + 1,
    ]);
  });
});
