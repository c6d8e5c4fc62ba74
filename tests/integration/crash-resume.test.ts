/**
 * Crash and resume: the app server process is killed (SIGKILL) in the middle
 * of an act step, then started again on the same port. The engine re-calls
 * it, finished steps replay from their memoized outputs, and the run
 * completes. A tool that already succeeded does not run again, no row is
 * written twice, and the interrupted step records that it is resuming.
 *
 * The app runs in a child process here, so this needs a Postgres server
 * (DATABASE_URL): embedded PGlite allows one process per folder.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { agentEntries, runEvents, runs, versions } from "../../db/schema";
import { startAppProcessStack, type AppProcessStack } from "../support/app-process-stack";
import { startCuttableLink } from "../support/cuttable-link";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

const hasPostgres = Boolean(process.env.DATABASE_URL);

describe.skipIf(!hasPostgres)("crash and resume (needs DATABASE_URL)", () => {
  let stack: AppProcessStack;
  let database: Database;
  let replay: ReplayServer;
  let dataDir: string;

  beforeAll(async () => {
    stack = await startAppProcessStack("dyno-crash-");
    ({ database, replay, dataDir } = stack);
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it("completes a run after the app is killed mid-step, says it is resuming, and neither repeats a finished tool nor writes a row twice", async () => {
    const { db } = database;
    const { startRun } = await import("../../app/models/runs.server");
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.run("echo line >> appended.txt"),
      turn.run("sleep 4 && echo finished >> slow.txt"),
      turn.write("after.txt", "written after the restart"),
      turn.reply("Done despite the crash."),
    ]);
    const run = await startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "survive a crash" },
      model,
    });

    // The slow command of iteration 2 is running: kill the app process outright.
    await waitForRunEvent(database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 2,
      timeoutMs: 60_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 800));
    await stack.app.kill("SIGKILL");
    const workspace = path.join(dataDir, "workspaces", project.id);
    expect(readFileSync(path.join(workspace, "appended.txt"), "utf8")).toBe("line\n");

    await stack.restartApp();
    const last = await waitForRunToFinish(database, run, 180_000);
    expect(last.type).toBe("complete");

    // Iteration 1's command ran once; iteration 2's (killed half-way) ran to the end once after the restart.
    expect(readFileSync(path.join(workspace, "appended.txt"), "utf8")).toBe("line\n");
    expect(readFileSync(path.join(workspace, "slow.txt"), "utf8")).toBe("finished\n");
    expect(readFileSync(path.join(workspace, "after.txt"), "utf8")).toBe("written after the restart");

    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
    const labels = events.map((r) => (typeof r.data.iteration === "number" ? `${r.type}:${r.data.iteration}` : r.type));
    expect(labels).toEqual([
      "queued",
      "starting",
      "version:0",
      "thinking:1",
      "tool_call:1",
      "tool_result:1",
      "files_changed:1",
      "version:1",
      "thinking:2",
      "tool_call:2",
      // The restarted app sees the engine's queued retry and says so; then the interrupted step, run again, does.
      "resuming",
      "resuming",
      "tool_result:2",
      "files_changed:2",
      "version:2",
      "thinking:3",
      "tool_call:3",
      "tool_result:3",
      "files_changed:3",
      "version:3",
      "thinking:4",
      "reply:4",
      "version:0",
      "complete",
    ]);
    // One version per changing step, none twice, none missing, numbered without a gap; the killed step's holds its
    // whole work (the command ran to the end after the restart).
    const taken = await db.select().from(versions).where(eq(versions.runId, run.id)).orderBy(asc(versions.number));
    expect(taken.map((v) => `${v.number}:${v.kind}:${v.iteration}`)).toEqual([
      "1:run-start:0",
      "2:step:1",
      "3:step:2",
      "4:step:3",
      "5:run-end:0",
    ]);
    expect(taken.map((v) => v.filesAdded)).toEqual([0, 1, 1, 1, 0]);
    expect(events.filter((e) => e.type === "version").map((e) => e.writes)).toEqual([1, 1, 1, 1, 1]);
    expect(events.filter((e) => e.type === "resuming").map((e) => e.data)).toEqual([
      { attempt: 2 },
      { step: "act-2", attempt: 2 },
    ]);
    // Iteration 1's rows were written once: its steps were replayed from memo, not re-run.
    expect(events.filter((e) => e.data.iteration === 1).map((e) => e.writes)).toEqual([1, 1, 1, 1, 1]);
    const entries = await db
      .select()
      .from(agentEntries)
      .where(eq(agentEntries.runId, run.id))
      .orderBy(asc(agentEntries.id));
    expect(entries.map((e) => `${e.kind}:${e.iteration}`)).toEqual([
      "user:0",
      "action:1",
      "result:1",
      "action:2",
      "result:2",
      "action:3",
      "result:3",
      "reply:4",
    ]);
    const [finished] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(finished).toMatchObject({ status: "complete", iteration: 4, error: null });
  });
  it("resumes a step that lost the database once it returns, and says it is resuming", async () => {
    const { db } = database;
    const { startRun } = await import("../../app/models/runs.server");
    // The app reaches Postgres through a link the test can cut: connections refused while it is down.
    const target = new URL(stack.env.DATABASE_URL!);
    const link = await startCuttableLink(Number(target.port || 5432), target.hostname);
    const throughLink = new URL(target);
    throughLink.host = `127.0.0.1:${link.port}`;
    await stack.restartApp({ env: { DATABASE_URL: throughLink.toString() } });
    try {
      const { user, project } = await createBuilder(db);
      const model = scripted(replay, [turn.run("sleep 3 && echo ok > db.txt"), turn.reply("Done after the outage.")]);
      const run = await startRun(db, {
        userId: user.id,
        projectId: project.id,
        input: { prompt: "survive an outage" },
        model,
      });
      await waitForRunEvent(database, {
        projectId: project.id,
        runId: run.id,
        until: (row) => row.type === "tool_call",
      });

      // The command is running; saving its result will find the database gone.
      link.down();
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      const back = Date.now();
      await link.up();
      const resuming = await waitForRunEvent(database, {
        projectId: project.id,
        runId: run.id,
        until: (row) => row.type === "resuming" && row.data.step === "act-1",
        timeoutMs: 120_000,
      });
      console.log(`[crash-resume] resuming ${Date.now() - back} ms after the database came back`);
      expect(resuming.data.attempt).toBeGreaterThanOrEqual(2);
      expect((await waitForRunToFinish(database, run, 120_000)).type).toBe("complete");
    } finally {
      await link.close();
      await stack.restartApp();
    }
  });
});
