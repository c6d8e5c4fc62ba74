/**
 * The dev engine restarts mid-run (a new one with empty state on the same
 * ports): the app's periodic check (RUN_RECONCILE_INTERVAL) finds that the
 * engine no longer knows the run and ends it as failed with the reason, so
 * the project takes the next prompt instead of refusing it (409) forever.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runs } from "../../db/schema";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ env: { RUN_RECONCILE_INTERVAL: "1s", RUN_RECONCILE_GRACE: "1s" } });
});

afterAll(async () => {
  await stack?.stop();
});

it("ends a run lost by an engine restart as failed, with the reason, and the project takes the next prompt", async () => {
  const { db } = stack.database;
  const app = await import("../../app/models/runs.server");
  const { LOST_RUN_REASONS } = await import("../../inngest/reconcile");
  const { user, project } = await createBuilder(db);
  const model = scripted(stack.replay, [turn.run("sleep 20"), turn.reply("done on the new engine")]);
  const run = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "lost" }, model });
  await waitForRunEvent(stack.database, {
    projectId: project.id,
    runId: run.id,
    until: (row) => row.type === "tool_call",
  });

  await stack.restartEngine();
  const last = await waitForRunToFinish(stack.database, run, 30_000);
  expect(last).toMatchObject({ type: "failed", data: { error: LOST_RUN_REASONS.unknown } });
  const [ended] = await db.select().from(runs).where(eq(runs.id, run.id));
  expect(ended).toMatchObject({ status: "failed", error: LOST_RUN_REASONS.unknown });

  const next = await app.startRun(db, {
    userId: user.id,
    projectId: project.id,
    input: { prompt: "again" },
    model,
    onlyWhenIdle: true,
  });
  expect((await waitForRunToFinish(stack.database, next, 60_000)).type).toBe("complete");
});
