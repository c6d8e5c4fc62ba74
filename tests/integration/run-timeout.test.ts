/**
 * The run-duration bound: a run that outlives AGENT_RUN_TIMEOUT is cancelled
 * by the engine (timeouts.finish) and recorded as failed, with the reason.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runEvents, runs } from "../../db/schema";
import { engineRunsForPrompt } from "../support/engine-api";
import { createBuilder } from "../support/fixtures";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;
let startRun: typeof import("../../app/models/runs.server").startRun;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_RUN_TIMEOUT: "2s", AGENT_PLACEHOLDER_STEP_MS: "200" } });
  ({ startRun } = await import("../../app/models/runs.server"));
});

afterAll(async () => {
  await stack?.stop();
});

it("fails a run that goes over its time limit, saying why", async () => {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  const run = await startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "forever", maxIterations: 200 } });

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
