/**
 * Versions through whole runs (real engine, BAML client against the replay
 * stand-in, local sandbox under bubblewrap): one version per changing step
 * plus the run's start and end, exact diffs, a restore to the middle that
 * gives exactly its files, an undo of the restore, the next conversation
 * told about it, a hostile workspace, and a stop whose partial work is a
 * version that "Undo this run" takes back.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gitRemotes, projects, runEvents, versions } from "../../db/schema";
import { engineRecordsFor } from "../support/engine-api";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

let stack: Stack;
let replay: ReplayServer;
let runsApi: typeof import("../../app/models/runs.server");
let versionsApi: typeof import("../../app/models/versions.server");

beforeAll(async () => {
  // A small bound, so one run of this file can outgrow it; the other runs' histories stay far under it.
  stack = await startStack({
    env: { VERSIONS_EXPORT_ALLOW_LOCAL: "1", VERSIONS_MAX_HISTORY_SIZE: "3m", VERSIONS_MAX_FILE_SIZE: "1m" },
  });
  replay = stack.replay;
  runsApi = await import("../../app/models/runs.server");
  versionsApi = await import("../../app/models/versions.server");
});

afterAll(async () => {
  await stack?.stop();
});

/** The workspace's files (node_modules left out), each with its text. */
function filesIn(workspace: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(workspace, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.name === "node_modules") continue;
      if (entry.isDirectory()) walk(rel);
      else out[rel] = readFileSync(path.join(workspace, rel), "utf8");
    }
  };
  walk("");
  return out;
}

const projectVersions = (projectId: string) =>
  stack.database.db.select().from(versions).where(eq(versions.projectId, projectId)).orderBy(asc(versions.number));

/** The remote's row once its push has ended (pushed or failed). */
async function pushOutcome(projectId: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await stack.database.db.select().from(gitRemotes).where(eq(gitRemotes.projectId, projectId));
    if (row && row.pushState !== "pushing") return row;
    if (Date.now() > deadline) throw new Error(`the push of ${projectId} is still ${row?.pushState ?? "missing"}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** What the app (in this process) writes to its log while it runs. */
function captureLog() {
  const lines: string[] = [];
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((method) =>
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      lines.push(args.map((a) => (a instanceof Error ? `${a.message} ${a.stack}` : String(a))).join(" "));
    }),
  );
  const writes = (["stdout", "stderr"] as const).map((stream) => {
    const original = process[stream].write.bind(process[stream]);
    process[stream].write = ((chunk: unknown, ...rest: unknown[]) => {
      lines.push(String(chunk));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    return () => {
      process[stream].write = original;
    };
  });
  return {
    text: () => lines.join("\n"),
    stop: () => {
      for (const spy of spies) spy.mockRestore();
      for (const restore of writes) restore();
    },
  };
}

async function projectRow(projectId: string) {
  const [row] = await stack.database.db.select().from(projects).where(eq(projects.id, projectId));
  return row!;
}

describe("versions of a run", () => {
  it("takes one per changing step plus start and end, diffs them exactly, restores the middle one and undoes the restore", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.write("a.txt", "one\n"),
      turn.write("b.txt", "bee\n"),
      turn.read("a.txt"),
      turn.run(
        "rm b.txt && printf 'one\\ntwo\\n' > a.txt && mkdir -p node_modules/dep && echo dep > node_modules/dep/i.js",
      ),
      turn.reply("Done."),
      // The next prompt.
      turn.reply("Working from the restored files."),
    ]);
    const run = await runsApi.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "abc" }, model });
    expect((await waitForRunToFinish(stack.database, run, 60_000)).type).toBe("complete");

    const taken = await projectVersions(project.id);
    expect(taken.map((v) => `${v.number}:${v.kind}:${v.iteration}:${v.tool ?? ""}`)).toEqual([
      "1:run-start:0:",
      "2:step:1:write_file",
      "3:step:2:write_file",
      // Step 3 read a file: no version. Step 4's command changed two files (node_modules is never kept).
      "4:step:4:run_command",
      "5:run-end:0:",
    ]);
    expect(taken.map((v) => [v.filesAdded, v.filesChanged, v.filesDeleted])).toEqual([
      [0, 0, 0],
      [1, 0, 0],
      [1, 0, 0],
      [0, 1, 1],
      [0, 0, 0],
    ]);
    expect(taken.every((v) => v.runId === run.id)).toBe(true);
    expect(taken[4]!.runStatus).toBe("complete");

    // Each version is announced once, with its id, right after its step's result.
    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
    const versionEvents = events.filter((e) => e.type === "version");
    expect(versionEvents.map((e) => e.data.versionId)).toEqual(taken.map((v) => v.id));
    expect(versionEvents.every((e) => e.writes === 1)).toBe(true);
    const labels = events.map((r) => (typeof r.data.iteration === "number" ? `${r.type}:${r.data.iteration}` : r.type));
    expect(labels.slice(labels.indexOf("tool_result:4"))).toEqual([
      "tool_result:4",
      "version:4",
      "thinking:5",
      "reply:5",
      "version:0",
      "complete",
    ]);

    // Diffs: the step's, exact, and the run's.
    const step4 = await versionsApi.versionDiff(db, await projectRow(project.id), taken[3]!.id, "step");
    expect(
      step4.files.map(({ path, status, linesAdded, linesDeleted }) => ({ path, status, linesAdded, linesDeleted })),
    ).toEqual([
      { path: "a.txt", status: "changed", linesAdded: 1, linesDeleted: 0 },
      { path: "b.txt", status: "deleted", linesAdded: 0, linesDeleted: 1 },
    ]);
    expect(step4.files[0]!.diff).toContain("@@ -1 +1,2 @@\n one\n+two\n");
    const whole = await versionsApi.versionDiff(db, await projectRow(project.id), taken[4]!.id, "run");
    expect(whole.files.map((f) => `${f.status} ${f.path}`)).toEqual(["added a.txt"]);
    expect(whole.fromNumber).toBe(1);

    // Restore the middle version: exactly its files (node_modules untouched).
    const workspace = stack.workspace(project.id);
    const middle = await versionsApi.restoreProjectVersion(db, await projectRow(project.id), taken[2]!.id);
    expect(middle).toMatchObject({ restoredNumber: 3, newNumber: 6 });
    expect(filesIn(workspace)).toEqual({ "a.txt": "one\n", "b.txt": "bee\n" });
    expect(readFileSync(path.join(workspace, "node_modules/dep/i.js"), "utf8")).toBe("dep\n");

    // Undo the restore: restore the version before it; the later files are back.
    const undone = await versionsApi.restoreProjectVersion(db, await projectRow(project.id), taken[4]!.id);
    expect(undone).toMatchObject({ restoredNumber: 5, newNumber: 7 });
    expect(filesIn(workspace)).toEqual({ "a.txt": "one\ntwo\n" });
    const after = await projectVersions(project.id);
    expect(after.slice(5).map((v) => `${v.number}:${v.kind}:${v.restoredFrom}`)).toEqual([
      `6:restore:${taken[2]!.id}`,
      `7:restore:${taken[4]!.id}`,
    ]);

    // The next prompt: the model is told, and the run starts from the restored files without a new start version.
    const next = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "go on" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, next, 60_000)).type).toBe("complete");
    const { renderConversation } = await import("../../inngest/agent/conversation");
    const { projectEntries } = await import("../../inngest/agent/entries");
    const turns = renderConversation(await projectEntries(db, project.id));
    expect(turns.at(-2)!.content).toMatch(/restored version 3 [\s\S]*restored version 5 [\s\S]*go on$/);
    // It only replied: no version of its own.
    expect((await projectVersions(project.id)).slice(7).map((v) => `${v.number}:${v.kind}`)).toEqual([]);
  });

  it("holds against a hostile workspace: rm -rf .git, a fake .git, a .gitignore hiding everything, odd names", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.write("keep.txt", "kept\n"),
      turn.run(
        "rm -rf .git && mkdir -p .git/hooks && printf '[core]\\n\\thooksPath = /tmp\\n' > .git/config && " +
          "printf '*\\n' > .gitignore && printf 'x\\n' > ./-rf && printf 'sp\\n' > 'with space.txt' && " +
          "printf 'u\\n' > 'ünï.txt' && " +
          `(test -e '${stack.dataDir}/history' && echo visible || echo hidden) > seen.txt`,
      ),
      turn.reply("Done."),
    ]);
    const run = await runsApi.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "x" }, model });
    expect((await waitForRunToFinish(stack.database, run, 60_000)).type).toBe("complete");
    const taken = await projectVersions(project.id);
    const files = await versionsApi.versionFiles(db, await projectRow(project.id), taken.at(-1)!.id);
    expect(files.map((f) => f.path)).toEqual([
      "-rf",
      ".gitignore",
      "keep.txt",
      "seen.txt",
      "with space.txt",
      "ünï.txt",
    ]);
    // The history folder is nowhere the command could see.
    const workspace = stack.workspace(project.id);
    expect(readFileSync(path.join(workspace, "seen.txt"), "utf8")).toBe("hidden\n");
    expect(existsSync(path.join(stack.dataDir, "history", `${project.id}.git`, "HEAD"))).toBe(true);

    // Restore the first step's version: the odd files go, the agent's fake .git stays (never part of history).
    await versionsApi.restoreProjectVersion(db, await projectRow(project.id), taken[1]!.id);
    expect(filesIn(workspace)).toEqual({ "keep.txt": "kept\n", ".git/config": "[core]\n\thooksPath = /tmp\n" });
  });

  it("keeps a stopped run's partial work as its version, and Undo this run restores the files before it", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [
      turn.write("base.txt", "base\n"),
      turn.reply("Base done."),
      turn.write("partial.txt", "half\n"),
      turn.run("echo more > more.txt && sleep 60"),
      turn.reply("never"),
    ]);
    const first = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "base" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, first, 60_000)).type).toBe("complete");

    const run = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "more" },
      model,
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 2,
    });
    await new Promise((resolve) => setTimeout(resolve, 800)); // the command is running
    await runsApi.stopRun(db, { userId: user.id, runId: run.id });
    expect((await waitForRunToFinish(stack.database, run, 20_000)).type).toBe("stopped");

    const own = (await projectVersions(project.id)).filter((v) => v.runId === run.id);
    // The stopped step's version and the run's end: whichever of the step and the cancel handler comes first.
    expect(own[0]).toMatchObject({ kind: "step", iteration: 1 });
    expect(own.find((v) => v.kind === "run-end")!.runStatus).toBe("stopped");
    const workspace = stack.workspace(project.id);
    const partial = await versionsApi.versionFiles(db, await projectRow(project.id), own.at(-1)!.id);
    expect(partial.map((f) => f.path)).toEqual(["base.txt", "more.txt", "partial.txt"]);

    await versionsApi.undoRun(db, await projectRow(project.id), run.id);
    expect(filesIn(workspace)).toEqual({ "base.txt": "base\n" });
    expect(existsSync(path.join(workspace, "more.txt"))).toBe(false);
    // The newest version is the undo, naming the version it restored: the card offers Redo, which puts back the files
    // the run left (its last version), itself a new version.
    const undo = await versionsApi.newestProjectVersion(db, await projectRow(project.id));
    const base = (await projectVersions(project.id)).find((v) => v.number === undo!.restoredFromNumber)!;
    expect(undo).toMatchObject({ kind: "restore", restoredFromNumber: base.number });
    expect(base.number).toBeLessThan(own[0]!.number);
    const redone = await versionsApi.redoRun(db, await projectRow(project.id), run.id);
    expect(redone).toMatchObject({ restoredNumber: own.at(-1)!.number, newNumber: undo!.number + 1 });
    expect(filesIn(workspace)).toEqual({ "base.txt": "base\n", "more.txt": "more\n", "partial.txt": "half\n" });
    await expect(versionsApi.redoRun(db, await projectRow(project.id), "not-a-uuid")).rejects.toThrow(/does not exist/);
    // Another builder's project cannot redo this run into its own files.
    const other = await createBuilder(db);
    await expect(versionsApi.redoRun(db, await projectRow(other.project.id), run.id)).rejects.toThrow(
      /nothing to redo/,
    );
  });

  it("keeps the history under its bound: the oldest versions are pruned, listed as such, and refused clearly", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    // 40 steps that each replace 100 KB that does not compress: ~4 MB of history against a 3 MB bound.
    const steps = Array.from({ length: 40 }, (_, i) => turn.run(`head -c 100000 /dev/urandom > big.bin && echo ${i}`));
    const model = scripted(replay, [...steps, turn.reply("Done.")]);
    const run = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "grow" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, run, 120_000)).type).toBe("complete");

    const row = await projectRow(project.id);
    const view = await versionsApi.projectVersions(db, row);
    if (!view.available) throw new Error("versions should be available on a local workspace");
    expect(view.versions).toHaveLength(42);
    expect(view.maxBytes).toBe(3 * 1024 * 1024);
    expect(view.sizeBytes).toBeLessThanOrEqual(view.maxBytes);
    // The run alone outgrew the bound, so even its start went; the newest 20 versions always stay.
    expect(view.oldestKept).toBeGreaterThan(1);
    expect(view.oldestKept).toBeLessThanOrEqual(42 - 20 + 1);
    const taken = await projectVersions(project.id);
    const gone = taken[0]!;
    const oldest = taken[view.oldestKept! - 1]!;

    const status = async (promise: Promise<unknown>) =>
      promise.then(
        () => 200,
        (error: unknown) => (error instanceof Response ? error.status : String(error)),
      );
    expect(await status(versionsApi.versionDiff(db, row, gone.id, "step"))).toBe(410);
    expect(await status(versionsApi.versionFiles(db, row, gone.id))).toBe(410);
    expect(await status(versionsApi.zipVersion(db, row, gone.id))).toBe(410);
    // The oldest kept version's own diff needs the pruned one before it; the run's diff, its pruned start.
    expect(await status(versionsApi.versionDiff(db, row, oldest.id, "step"))).toBe(410);
    expect(await status(versionsApi.versionDiff(db, row, taken.at(-1)!.id, "run"))).toBe(410);
    expect(await status(versionsApi.versionDiff(db, row, taken[view.oldestKept!]!.id, "step"))).toBe(200);
    await expect(versionsApi.undoRun(db, row, run.id)).rejects.toThrow(/pruned to keep the project's history under/);
    await expect(versionsApi.restoreProjectVersion(db, row, gone.id)).rejects.toThrow(/Version 1 was pruned/);

    // The History view says it and greys the pruned rows; a kept one restores.
    const { loadHistory } = await import("../../app/builder/history.server");
    const history = await loadHistory(db, row, { versionId: gone.id, show: "diff", scope: "step", file: null });
    expect(history.error).toMatch(/Version 1 was pruned/);
    const restored = await versionsApi.restoreProjectVersion(db, row, oldest.id);
    expect(restored.restoredNumber).toBe(oldest.number);
    expect(
      execFileSync(
        "git",
        ["--git-dir", path.join(stack.dataDir, "history", `${project.id}.git`), "fsck", "--no-dangling"],
        {
          encoding: "utf8",
        },
      ),
    ).toBe("");
  });

  it("refuses to restore while a run is active, with a clear reason", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [turn.write("a.txt", "a"), turn.run("sleep 60"), turn.reply("never")]);
    const run = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "slow" },
      model,
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 2,
    });
    const [first] = await projectVersions(project.id);
    await expect(versionsApi.restoreProjectVersion(db, await projectRow(project.id), first!.id)).rejects.toThrow(
      /A run is running: stop it or let it finish/,
    );
    await runsApi.stopRun(db, { userId: user.id, runId: run.id });
    await waitForRunToFinish(stack.database, run, 20_000);
  });

  it("exports the history to a local bare repository, keeps the token sealed, and names a bad remote clearly", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [turn.write("index.html", "<h1>hi</h1>\n"), turn.reply("Done.")]);
    const run = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Say hi on a page" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, run, 60_000)).type).toBe("complete");

    const bare = path.join(stack.dataDir, `export-${project.id}.git`);
    execFileSync("git", ["init", "-q", "--bare", bare]);
    const row = await projectRow(project.id);
    const logged = captureLog();
    let pushed;
    try {
      pushed = await versionsApi.exportToGit(db, row, { url: bare, branch: "dyno", token: "tok-secret-123" });
      expect(pushed).toEqual({ branch: "dyno", number: 3, state: "pushing" });
      // The request returns at once; the row says "pushing" until the function records the outcome.
      expect((await versionsApi.projectRemote(db, row))!.pushState).toMatch(/pushing|pushed/);
      expect(await pushOutcome(project.id)).toMatchObject({
        pushState: "pushed",
        lastPushedNumber: 3,
        lastError: null,
      });
    } finally {
      logged.stop();
    }
    // A second export while one is pushing is refused with a clear 409, and the push in flight is left alone.
    const { handleVersionAction } = await import("../../app/builder/history.server");
    const inFlight = new Date();
    const onRow = eq(gitRemotes.projectId, project.id);
    await db.update(gitRemotes).set({ pushState: "pushing", pushRequestedAt: inFlight }).where(onRow);
    const form = new FormData();
    form.set("url", bare);
    form.set("branch", "other");
    const busy = await handleVersionAction(db, row, "version-export", form);
    expect(busy).toMatchObject({ ok: false, status: 409, error: expect.stringMatching(/already under way/) });
    const [held] = await db.select().from(gitRemotes).where(onRow);
    expect(held).toMatchObject({ pushState: "pushing", branch: "dyno", pushRequestedAt: inFlight });
    // One left "pushing" for over 30 min (its event lost) may be asked again.
    await db
      .update(gitRemotes)
      .set({ pushRequestedAt: new Date(Date.now() - versionsApi.EXPORT_STALE_MS - 60_000) })
      .where(onRow);
    await versionsApi.exportToGit(db, row, { url: bare, branch: "dyno", token: "" });
    expect(await pushOutcome(project.id)).toMatchObject({ pushState: "pushed", lastPushedNumber: 3 });

    const log = execFileSync("git", ["--git-dir", bare, "log", "--format=%s%n%b", "dyno"], { encoding: "utf8" });
    expect(log).toContain(`Run ${run.id.slice(0, 8)}: Say hi on a page`);
    expect(log).toContain(`run ${run.id}`);
    expect(execFileSync("git", ["--git-dir", bare, "show", "dyno:index.html"], { encoding: "utf8" })).toBe(
      "<h1>hi</h1>\n",
    );

    const [remote] = await db.select().from(gitRemotes).where(eq(gitRemotes.projectId, project.id));
    expect(remote).toMatchObject({ url: bare, branch: "dyno", lastError: null });
    expect(remote!.token).toMatch(/^v1\./);
    expect(remote!.token).not.toContain("tok-secret-123");
    // The token is in neither the event, the engine's runs and step outputs, nor the app's log.
    const engine = await engineRecordsFor(
      stack.engine.url,
      "versions/export.requested",
      (d) => d.projectId === project.id,
    );
    expect(engine.runs.length).toBeGreaterThanOrEqual(1);
    expect(engine.text).toContain(project.id);
    expect(engine.outputs.filter((o) => o !== undefined && o !== null)).not.toContainEqual(
      expect.stringContaining("tok-secret-123"),
    );
    expect(engine.text).not.toContain("tok-secret-123");
    expect(logged.text()).not.toContain("tok-secret-123");

    // A remote that is not a repository: the request is accepted, the outcome is the recorded error. It is another
    // remote, so the push of version 3 to the first one is forgotten rather than claimed for this one.
    await versionsApi.exportToGit(db, row, { url: path.join(stack.dataDir, "nowhere.git"), branch: "dyno", token: "" });
    const failed = await pushOutcome(project.id);
    expect(failed).toMatchObject({ pushState: "failed", lastPushedNumber: null, lastPushedAt: null });
    expect(failed.lastError).toMatch(/There is no Git repository/);
    // The blank token kept the stored one.
    expect(failed.token).toBe(remote!.token);
    await expect(versionsApi.exportToGit(db, row, { url: "ext::sh -c id", branch: "dyno", token: "" })).rejects.toThrow(
      /other Git transports are not supported/,
    );
  });

  it("records a remote's refusal of the token as the push's outcome, without a retry storm", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [turn.write("index.html", "<h1>no</h1>\n"), turn.reply("Done.")]);
    const run = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Page" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, run, 60_000)).type).toBe("complete");
    let requests = 0;
    const refusing = http.createServer((_request, response) => {
      requests += 1;
      response.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"' }).end("no");
    });
    await new Promise<void>((resolve) => refusing.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = refusing.address() as AddressInfo;
      const row = await projectRow(project.id);
      const logged = captureLog();
      try {
        await versionsApi.exportToGit(db, row, {
          url: `http://127.0.0.1:${port}/app.git`,
          branch: "dyno",
          token: "bad-token-77f1",
        });
        const outcome = await pushOutcome(project.id);
        expect(outcome.pushState).toBe("failed");
        expect(outcome.lastError).toMatch(/refused the credentials: check the token/);
        expect(outcome.lastError).not.toContain("bad-token-77f1");
      } finally {
        logged.stop();
      }
      const seen = requests;
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      // One push (git asks, then asks again with the credentials), no engine retries after it.
      expect(requests).toBe(seen);
      expect(seen).toBeLessThanOrEqual(3);
      const engine = await engineRecordsFor(
        stack.engine.url,
        "versions/export.requested",
        (d) => d.projectId === project.id,
      );
      expect(engine.runs).toHaveLength(1);
      expect(engine.text).not.toContain("bad-token-77f1");
      expect(logged.text()).not.toContain("bad-token-77f1");
    } finally {
      await new Promise((resolve) => refusing.close(resolve));
    }
  });

  it("restarts a running app on the restored files", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const server = (text: string) =>
      `require("http").createServer((q, s) => s.end(${JSON.stringify(text)})).listen(5173);\n`;
    const model = scripted(replay, [
      turn.write("server.js", server("one")),
      turn.write("server.js", server("two")),
      turn.reply("Done."),
    ]);
    const run = await runsApi.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "app" }, model });
    expect((await waitForRunToFinish(stack.database, run, 60_000)).type).toBe("complete");
    const { openProjectSandbox } = await import("../../app/models/project-files.server");
    const row = await projectRow(project.id);
    const sandbox = (await openProjectSandbox(row))!;
    try {
      const started = await sandbox.app.start({ command: "node server.js" });
      expect(started.state).toBe("running");
      const first = (await projectVersions(project.id)).find((v) => v.kind === "step" && v.iteration === 1)!;
      const outcome = await versionsApi.restoreProjectVersion(db, row, first.id);
      expect(outcome.appRestarted).toBe(true);
      // A new start of the same command, on the restored server.js.
      let status = await sandbox.app.status();
      for (let i = 0; i < 200 && !(status.state === "running" && status.startedAt !== started.startedAt); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        status = await sandbox.app.status();
      }
      expect(status).toMatchObject({ state: "running", command: "node server.js" });
      expect(status.startedAt).not.toBe(started.startedAt);
      expect(readFileSync(path.join(stack.workspace(project.id), "server.js"), "utf8")).toBe(server("one"));
    } finally {
      await sandbox.app.stop();
    }
  });
});
