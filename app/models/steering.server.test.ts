import { asc, eq } from "drizzle-orm";
import getPort from "get-port";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, runEvents, runs, steerMessages } from "../../db/schema";
import { renderConversation } from "../../inngest/agent/conversation";
import { deliverSteering } from "../../inngest/agent/steering";
import { createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder, createQueuedRun } from "../../tests/support/fixtures";

let t: TestDatabase;
let steering: typeof import("./steering.server");

beforeAll(async () => {
  // An engine address where nothing listens: a resent message's run fails to start, which these tests allow.
  process.env.INNGEST_DEV = "1";
  process.env.INNGEST_BASE_URL = `http://127.0.0.1:${await getPort()}`;
  process.env.AGENT_MODEL ??= "replay/todo-page";
  t = await createTestDatabase();
  steering = await import("./steering.server");
});

afterAll(async () => {
  await t?.drop();
});

async function runningRun() {
  const { db } = t.database;
  const { user, project } = await createBuilder(db);
  const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
  await db.update(runs).set({ status: "running", startedAt: new Date() }).where(eq(runs.id, run.id));
  return { user, project, run };
}

const steersOf = (runId: string) =>
  t.database.db
    .select()
    .from(steerMessages)
    .where(eq(steerMessages.runId, runId))
    .orderBy(asc(steerMessages.createdAt));

describe("queueing a message for an active run", () => {
  it("queues it for the active run, and answers undefined when no run is active", async () => {
    const { db } = t.database;
    const { user, project, run } = await runningRun();
    const queued = await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "  use blue  " });
    expect(queued?.runId).toBe(run.id);
    expect((await steersOf(run.id)).map((s) => [s.content, s.state])).toEqual([["use blue", "queued"]]);
    await db.update(runs).set({ status: "complete" }).where(eq(runs.id, run.id));
    expect(await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "late" })).toBeUndefined();
  });

  it("refuses other builders' projects, oversized text, a sixth waiting message and a stopping run", async () => {
    const { db } = t.database;
    const { user, project, run } = await runningRun();
    const other = await createBuilder(db);
    await expect(
      steering.queueSteer(db, { userId: other.user.id, projectId: project.id, prompt: "hi" }),
    ).rejects.toThrow("Project not found");
    await expect(
      steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "x".repeat(20_001) }),
    ).rejects.toThrow(/limited to 20,000 characters/);
    for (let i = 0; i < steering.MAX_QUEUED_STEERS; i++)
      await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: `note ${i}` });
    await expect(
      steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "one more" }),
    ).rejects.toThrow(/5 messages are already waiting/);
    expect(await steersOf(run.id)).toHaveLength(steering.MAX_QUEUED_STEERS);
    await db.update(runs).set({ status: "stopping" }).where(eq(runs.id, run.id));
    await expect(steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "x" })).rejects.toThrow(
      /The run is stopping/,
    );
  });
});

describe("delivering queued messages at a think", () => {
  it("records them as one steer entry at the iteration and marks them delivered, once however often it is asked", async () => {
    const { db } = t.database;
    const { user, project, run } = await runningRun();
    await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "first" });
    await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "second" });
    expect(await deliverSteering(db, run, 3)).toBe(2);
    // The think retried after a crash: the entry is there, nothing is delivered again, even a message sent meanwhile.
    await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "third" });
    expect(await deliverSteering(db, run, 3)).toBe(0);
    const entries = await db.select().from(agentEntries).where(eq(agentEntries.runId, run.id));
    expect(entries.map((e) => [e.kind, e.iteration, e.payload.messages])).toEqual([
      ["steer", 3, [expect.objectContaining({ content: "first" }), expect.objectContaining({ content: "second" })]],
    ]);
    expect((await steersOf(run.id)).map((s) => [s.content, s.state, s.deliveredIteration])).toEqual([
      ["first", "delivered", 3],
      ["second", "delivered", 3],
      ["third", "queued", null],
    ]);
    // The next think takes the one sent meanwhile.
    expect(await deliverSteering(db, run, 4)).toBe(1);
    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id));
    expect(events.filter((e) => e.type === "steer_delivered").map((e) => [e.data.iteration, e.writes])).toEqual([
      [3, 1],
      [4, 1],
    ]);
    const turns = renderConversation(
      await db.select().from(agentEntries).where(eq(agentEntries.runId, run.id)).orderBy(asc(agentEntries.id)),
    );
    expect(turns).toEqual([
      {
        role: "user",
        content:
          "The builder added, while you were working:\n\nfirst\n\nsecond\n\n" +
          "The builder added, while you were working:\n\nthird",
      },
    ]);
  });

  it("delivers nothing to a run that is no longer running: the messages stay queued", async () => {
    const { db } = t.database;
    const { user, project, run } = await runningRun();
    await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "too late" });
    await db.update(runs).set({ status: "stopping" }).where(eq(runs.id, run.id));
    expect(await deliverSteering(db, run, 2)).toBe(0);
    expect((await steersOf(run.id)).map((s) => s.state)).toEqual(["queued"]);
    expect(await db.select().from(agentEntries).where(eq(agentEntries.runId, run.id))).toEqual([]);
  });
});

describe("withdrawing", () => {
  it("withdraws a queued message so no think delivers it, and refuses one already read with its step", async () => {
    const { db } = t.database;
    const { user, project, run } = await runningRun();
    const kept = await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "keep" });
    const dropped = await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "drop" });
    await steering.withdrawSteer(db, { projectId: project.id, steerId: dropped!.id });
    expect(await deliverSteering(db, run, 2)).toBe(1);
    const [entry] = await db.select().from(agentEntries).where(eq(agentEntries.runId, run.id));
    expect(JSON.stringify(entry!.payload)).not.toContain("drop");
    await expect(steering.withdrawSteer(db, { projectId: project.id, steerId: kept!.id })).rejects.toThrow(
      "Too late to withdraw: the agent read it at step 2.",
    );
    const other = await createBuilder(db);
    await expect(steering.withdrawSteer(db, { projectId: other.project.id, steerId: kept!.id })).rejects.toThrow(
      "Message not found",
    );
  });

  it("resolves a withdraw racing a delivery in one of them: the message is either delivered or withdrawn", async () => {
    const { db } = t.database;
    for (let round = 0; round < 5; round++) {
      const { user, project, run } = await runningRun();
      const queued = await steering.queueSteer(db, { userId: user.id, projectId: project.id, prompt: "race" });
      const [delivered, withdrawn] = await Promise.allSettled([
        deliverSteering(db, run, 1),
        steering.withdrawSteer(db, { projectId: project.id, steerId: queued!.id }),
      ]);
      const [row] = await steersOf(run.id);
      const entries = await db.select().from(agentEntries).where(eq(agentEntries.runId, run.id));
      if (row!.state === "delivered") {
        expect(delivered).toEqual({ status: "fulfilled", value: 1 });
        expect(withdrawn.status).toBe("rejected");
        expect(entries).toHaveLength(1);
      } else {
        expect(row!.state).toBe("withdrawn");
        expect(withdrawn.status).toBe("fulfilled");
        expect(delivered).toEqual({ status: "fulfilled", value: 0 });
        expect(entries).toHaveLength(0);
      }
    }
  });
});

describe("a run that ends before its next step", () => {
  it("leaves the message shown as undelivered; sending it makes it a prompt once", async () => {
    const { db } = t.database;
    const { user, project, run } = await runningRun();
    const queued = await steering.queueSteer(db, {
      userId: user.id,
      projectId: project.id,
      prompt: "then add a footer",
    });
    expect((await steering.listSteering(db, project.id)).map((s) => s.status)).toEqual(["queued"]);
    await db.update(runs).set({ status: "stopped" }).where(eq(runs.id, run.id));
    expect(await steering.listSteering(db, project.id)).toEqual([
      expect.objectContaining({ id: queued!.id, status: "undelivered", content: "then add a footer" }),
    ]);
    // The engine is unreachable here, so the new run fails to start; the message became its prompt all the same.
    await steering.resendSteer(db, { userId: user.id, projectId: project.id, steerId: queued!.id }).catch(() => {});
    const prompts = await db.select().from(runs).where(eq(runs.projectId, project.id)).orderBy(asc(runs.createdAt));
    expect(prompts.map((r) => r.prompt)).toEqual(["test prompt", "then add a footer"]);
    expect(await steering.listSteering(db, project.id)).toEqual([]);
    await expect(
      steering.resendSteer(db, { userId: user.id, projectId: project.id, steerId: queued!.id }),
    ).rejects.toThrow(/Only a message the run ended before reading/);
  });
});
