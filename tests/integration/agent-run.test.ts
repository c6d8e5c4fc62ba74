/**
 * A prompt through the real engine: the app's chat logic sends
 * `agent/prompt`, the engine drives the coding-agent function through the
 * app's /api/inngest, and the rows it leaves are checked.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messages, runEvents, runs } from "../../db/schema";
import { engineRunsForPrompt } from "../support/engine-api";
import { createBuilder } from "../support/fixtures";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

let stack: Stack;
let startRun: typeof import("../../app/models/runs.server").startRun;

beforeAll(async () => {
  stack = await startStack({ env: { AGENT_PLACEHOLDER_STEP_MS: "20" } });
  ({ startRun } = await import("../../app/models/runs.server"));
  console.log(`[agent-run] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

describe("coding-agent on the real Inngest engine", () => {
  it("runs every iteration step exactly once, in order, and completes the run", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const run = await startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Build a todo page", mode: "build", maxIterations: 6 },
    });

    const last = await waitForRunToFinish(stack.database, run);
    expect(last.type).toBe("complete");

    const rows = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
    expect(rows.map((r) => r.type)).toEqual(["queued", "starting", ...Array(6).fill("iteration"), "complete"]);
    const iterations = rows.filter((r) => r.type === "iteration");
    expect(iterations.map((r) => r.data.iteration)).toEqual([1, 2, 3, 4, 5, 6]);
    // `writes` counts how often a row's writer ran: 1 everywhere means no step body re-ran.
    expect(rows.map((r) => r.writes)).toEqual(rows.map(() => 1));
    const ids = rows.map((r) => r.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));

    const [finished] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(finished).toMatchObject({ status: "complete", iteration: 6, error: null });
    expect(finished!.startedAt).toBeInstanceOf(Date);
    expect(finished!.finishedAt!.getTime()).toBeGreaterThanOrEqual(finished!.startedAt!.getTime());

    const engineRuns = await engineRunsForPrompt(stack.engine.url, run.id);
    expect(engineRuns.map((r) => r.status)).toEqual(["Completed"]);

    const transcript = await db.select().from(messages).where(eq(messages.runId, run.id)).orderBy(asc(messages.createdAt));
    expect(transcript.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(transcript[0]!.content).toBe("Build a todo page");
  });

  it("runs two prompts on one project one after the other, never side by side", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const input = { prompt: "one", mode: "build" as const, maxIterations: 4 };
    const [first, second] = await Promise.all([
      startRun(db, { userId: user.id, projectId: project.id, input }),
      startRun(db, { userId: user.id, projectId: project.id, input: { ...input, prompt: "two" } }),
    ]);

    for (const run of [first, second]) {
      const last = await waitForRunToFinish(stack.database, run);
      expect(last.type).toBe("complete");
    }

    // Between one run's `starting` and its `complete`, no row of the other run's steps.
    const rows = await db.select().from(runEvents).where(eq(runEvents.projectId, project.id)).orderBy(asc(runEvents.id));
    const stepRows = rows.filter((r) => r.type !== "queued");
    const order = stepRows.map((r) => r.runId);
    const firstToRun = order[0];
    const switchAt = order.findIndex((id) => id !== firstToRun);
    expect(switchAt).toBe(6); // starting + 4 iterations + complete
    expect(order.slice(switchAt).every((id) => id !== firstToRun)).toBe(true);
  });

  it("refuses a prompt for someone else's project and records nothing", async () => {
    const { db } = stack.database;
    const owner = await createBuilder(db);
    const stranger = await createBuilder(db);
    await expect(
      startRun(db, { userId: stranger.user.id, projectId: owner.project.id, input: { prompt: "mine now", mode: "build" } }),
    ).rejects.toThrow(/not found/i);
    const rows = await db.select().from(runs).where(eq(runs.projectId, owner.project.id));
    expect(rows).toHaveLength(0);
  });

  it("refuses an empty or oversized prompt with a clear message", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    await expect(startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "   " } })).rejects.toThrow(
      /Write a prompt first/,
    );
    await expect(
      startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "x".repeat(20_001) } }),
    ).rejects.toThrow(/limited to 20,000 characters/);
  });
});
