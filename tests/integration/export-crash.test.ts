/**
 * Export to Git survives a crash of the app: the push is a step of the
 * export-history function, so when the app process is killed (SIGKILL) while
 * git is pushing, the engine calls the restarted app again and the push ends
 * there, recorded on the row. The remote is a local bare repository whose
 * pre-receive hook holds the first push for a few seconds (and refuses it, so
 * only the push after the restart can land the branch).
 *
 * The app runs in a child process, so this needs a Postgres server (DATABASE_URL).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { gitRemotes, projects } from "../../db/schema";
import { startAppProcessStack, type AppProcessStack } from "../support/app-process-stack";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { waitForRunToFinish } from "../support/wait";

const hasPostgres = Boolean(process.env.DATABASE_URL);

describe.skipIf(!hasPostgres)("export after a crash (needs DATABASE_URL)", () => {
  let stack: AppProcessStack;
  let database: Database;
  let replay: ReplayServer;
  let dataDir: string;

  beforeAll(async () => {
    // Both the app process and this one (which runs the export action) may push to this machine's repositories.
    process.env.VERSIONS_EXPORT_ALLOW_LOCAL = "1";
    stack = await startAppProcessStack("dyno-export-crash-");
    ({ database, replay, dataDir } = stack);
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it("finishes a push the app's crash interrupted, and records it", async () => {
    const { db } = database;
    const { startRun } = await import("../../app/models/runs.server");
    const { exportToGit } = await import("../../app/models/versions.server");
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [turn.write("index.html", "<h1>crash</h1>\n"), turn.reply("Done.")]);
    const run = await startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "A page" }, model });
    expect((await waitForRunToFinish(database, run, 60_000)).type).toBe("complete");

    const bare = path.join(dataDir, "crash-export.git");
    execFileSync("git", ["init", "-q", "--bare", bare]);
    const started = path.join(dataDir, "first-push-started");
    const hook = path.join(bare, "hooks", "pre-receive");
    writeFileSync(
      hook,
      `#!/bin/sh\nif [ ! -e "${started}" ]; then touch "${started}"; sleep 6; echo "held" >&2; exit 1; fi\nexit 0\n`,
    );
    chmodSync(hook, 0o755);

    const [row] = await db.select().from(projects).where(eq(projects.id, project.id));
    await exportToGit(db, row!, { url: bare, branch: "dyno", token: "crash-token-3c" });
    const deadline = Date.now() + 30_000;
    while (!existsSync(started)) {
      if (Date.now() > deadline) throw new Error("the first push never reached the remote");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await stack.app.kill("SIGKILL");
    const [during] = await db.select().from(gitRemotes).where(eq(gitRemotes.projectId, project.id));
    expect(during!.pushState).toBe("pushing");
    await stack.restartApp();

    const until = Date.now() + 180_000;
    let remote = during!;
    while (remote.pushState === "pushing") {
      if (Date.now() > until) throw new Error("the push did not end after the restart");
      await new Promise((resolve) => setTimeout(resolve, 500));
      remote = (await db.select().from(gitRemotes).where(eq(gitRemotes.projectId, project.id)))[0]!;
    }
    expect(remote).toMatchObject({ pushState: "pushed", lastPushedNumber: 3, lastError: null });
    expect(execFileSync("git", ["--git-dir", bare, "show", "dyno:index.html"], { encoding: "utf8" })).toBe(
      "<h1>crash</h1>\n",
    );
  });
});
