/**
 * The run-duration bound: a run that outlives AGENT_RUN_TIMEOUT is cancelled
 * by the engine (timeouts.finish) and recorded as failed, with the reason.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runEvents, runs } from "../../db/schema";
import { engineRunsForPrompt } from "../support/engine-api";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;
let replay: ReplayServer;
let startRun: typeof import("../../app/models/runs.server").startRun;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_RUN_TIMEOUT: "2s" } });
  replay = stack.replay;
  ({ startRun } = await import("../../app/models/runs.server"));
});

afterAll(async () => {
  await stack?.stop();
});

it("fails a run that goes over its time limit, saying why", async () => {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  // A session far longer than the limit: every answer takes 300 ms.
  const turns = Array.from({ length: 200 }, (_, i) => turn.run(`echo ${i}`, { delayMs: 300 }));
  const run = await startRun(db, {
    userId: user.id,
    projectId: project.id,
    input: { prompt: "forever", maxIterations: 200 },
    model: scripted(replay, turns),
  });

  const last = await waitForRunToFinish(stack.database, run);
  expect(last.type).toBe("failed");
  const [failed] = await db.select().from(runs).where(eq(runs.id, run.id));
  expect(failed!.status).toBe("failed");
  expect(failed!.error).toMatch(/time limit \(2s\)/);
  expect(failed!.iteration).toBeLessThan(200);
  expect((await engineRunsForPrompt(stack.engine.url, run.id)).map((r) => r.status)).toEqual(["Cancelled"]);

  const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
  expect(rows.at(-1)!.type).toBe("failed");
});
