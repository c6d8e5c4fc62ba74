/**
 * Stop during `npm install` through the real engine and the local sandbox (egress proxy, real npm registry): the
 * install is a big one, so it is still downloading when the stop comes; the run ends `stopped` and no process of
 * the install is left. The command's processes are found by a marker in their environment (an npm child inherits
 * it), which holds inside bubblewrap too, where a cwd or a command line says nothing about the project.
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

let stack: Stack;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack();
  app = await import("../../app/models/runs.server");
});

afterAll(async () => {
  await stack?.stop();
});

/** The pids whose environment carries `marker` (processes of other users, or gone meanwhile, are skipped). */
function pidsWithMarker(marker: string): Array<{ pid: number; command: string }> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/environ`, "latin1").includes(marker)) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, "latin1").replaceAll("\0", " ").trim();
      found.push({ pid: Number(entry), command });
    } catch {
      // not ours to read, or it ended
    }
  }
  return found;
}

describe("stopping a run during npm install", () => {
  it("kills the install and all its processes within seconds", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const marker = `DYNO_STOP_TEST_${randomUUID().replaceAll("-", "")}`;
    // Big enough to take well over the time it takes to stop it (a cold npm cache: the project's own HOME).
    const install = `${marker}=1 npm install --no-audit --no-fund next@15 typescript@5 @types/node@22 eslint@9`;
    const model = scripted(stack.replay, [
      turn.write("package.json", JSON.stringify({ name: "big", private: true, version: "0.0.0" })),
      turn.run(install),
      turn.reply("installed"),
    ]);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "install a lot" },
      model,
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call" && row.data.tool === "run_command",
      timeoutMs: 60_000,
    });
    // npm itself is running (not only the shell that starts it).
    await expect
      .poll(() => pidsWithMarker(marker).some((p) => /\bnpm\b|npm-cli/.test(p.command)), {
        timeout: 30_000,
        interval: 100,
      })
      .toBe(true);

    await app.stopRun(db, { userId: user.id, runId: run.id });
    expect((await waitForRunToFinish(stack.database, run, 15_000)).type).toBe("stopped");
    await expect.poll(() => pidsWithMarker(marker), { timeout: 5_000, interval: 100 }).toEqual([]);
  });
});
