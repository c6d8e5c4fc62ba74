import { eq } from "drizzle-orm";
import getPort from "get-port";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messages, runEvents, runs } from "../../db/schema";
import { createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder } from "../../tests/support/fixtures";

let t: TestDatabase;
let models: typeof import("./runs.server");

beforeAll(async () => {
  // An engine address where nothing listens.
  process.env.INNGEST_DEV = "1";
  process.env.INNGEST_BASE_URL = `http://127.0.0.1:${await getPort()}`;
  t = await createTestDatabase();
  models = await import("./runs.server");
});

afterAll(async () => {
  await t?.drop();
});

describe("startRun without a reachable engine", () => {
  it("keeps the prompt, marks the run failed with the reason, and says the engine is unreachable", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const error = await models
      .startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "hello" }, model: "replay/todo-page" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(models.EngineUnavailableError);
    expect((error as Error).message).toMatch(/Could not reach the Inngest engine/);

    const [run] = await db.select().from(runs).where(eq(runs.projectId, project.id));
    expect(run).toMatchObject({ status: "failed", prompt: "hello" });
    expect(run!.error).toMatch(/Could not reach the Inngest engine/);
    // A sentence for the builder, not the send's own error (an address, a stack).
    expect(run!.error).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|fetch failed|\n\s+at /);
    const types = (await db.select().from(runEvents).where(eq(runEvents.runId, run!.id))).map((r) => r.type);
    expect(types).toEqual(["queued", "failed"]);
    const transcript = await db.select().from(messages).where(eq(messages.runId, run!.id));
    expect(transcript.map((m) => m.role).sort()).toEqual(["system", "user"]);
  });

  it("keeps a prompt holding a NUL byte or a lone surrogate, escaped, instead of failing the insert", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    await models
      .startRun(db, {
        userId: user.id,
        projectId: project.id,
        input: { prompt: "make\u0000 a page \ud800 now" },
        model: "replay/todo-page",
      })
      .catch((e: unknown) => e);
    const [run] = await db.select().from(runs).where(eq(runs.projectId, project.id));
    expect(run!.prompt).toBe("make\ufffd a page \ufffd now");
    const transcript = await db.select().from(messages).where(eq(messages.runId, run!.id));
    expect(transcript.find((m) => m.role === "user")?.content).toBe("make\ufffd a page \ufffd now");
  });

  it("answers not found for a project id that does not exist", async () => {
    const { db } = t.database;
    const { user } = await createBuilder(db);
    await expect(
      models.startRun(db, {
        userId: user.id,
        projectId: "00000000-0000-4000-8000-000000000000",
        input: { prompt: "hi" },
        model: "replay/todo-page",
      }),
    ).rejects.toBeInstanceOf(models.NotFoundError);
    await expect(
      models.startRun(db, {
        userId: user.id,
        projectId: "../../etc",
        input: { prompt: "hi" },
        model: "replay/todo-page",
      }),
    ).rejects.toBeInstanceOf(models.NotFoundError);
  });

  it("refuses a prompt when no model is configured (AGENT_MODEL is unset here), before anything is written", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    await expect(
      models.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "hi" } }),
    ).rejects.toBeInstanceOf(models.ModelNotConfiguredError);
    expect(await db.select().from(runs).where(eq(runs.projectId, project.id))).toHaveLength(0);
  });
});
