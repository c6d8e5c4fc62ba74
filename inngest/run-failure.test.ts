import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { agentEntries, messages, runs } from "../db/schema";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import {
  DATABASE_FAILURE_REASON,
  failureReason,
  INTERNAL_FAILURE_REASON,
  recordRunFailure,
  RunFailedError,
  RunRetryableError,
} from "./run-failure";

/** What onFailure receives: the engine's copy of the error, rebuilt from JSON. */
function asTheEngineSendsIt(error: Error): Error {
  const { name, message, stack } = error;
  const cause = error.cause as { name?: string; message?: string; code?: string } | undefined;
  return Object.assign(new Error(message), {
    name,
    stack,
    ...(cause ? { cause: { name: cause.name, message: cause.message, code: cause.code } } : {}),
  });
}

describe("failureReason", () => {
  it("keeps a message written for the builder, and cuts a long one", () => {
    expect(failureReason(new RunFailedError("The model server refused the request: HTTP 401: bad key"))).toBe(
      "The model server refused the request: HTTP 401: bad key",
    );
    expect(failureReason(asTheEngineSendsIt(new RunRetryableError("The model did not answer within 60 s.")))).toBe(
      "The model did not answer within 60 s.",
    );
    expect(failureReason(new RunFailedError("x".repeat(2000))).length).toBeLessThanOrEqual(500);
  });

  it("never passes on another error's text", () => {
    const error = new TypeError("Cannot read properties of undefined (reading 'payload')");
    expect(failureReason(error)).toBe(INTERNAL_FAILURE_REASON);
    expect(failureReason(asTheEngineSendsIt(error))).toBe(INTERNAL_FAILURE_REASON);
    expect(failureReason(undefined)).toBe(INTERNAL_FAILURE_REASON);
  });
});

describe.each(availableDrivers())("a database error that fails a run on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it("ends the run with a short reason, without the SQL or its parameters, and logs the details", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    // A real failed write: a NUL in jsonb, written past the helpers.
    const error = await db
      .insert(agentEntries)
      .values({ runId: run.id, projectId: project.id, iteration: 1, kind: "result", payload: { content: "secret\0" } })
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error?.message).toMatch(/insert into/);

    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      await recordRunFailure(db, run.id, asTheEngineSendsIt(error!));
      expect(log.mock.calls.flat().join("\n")).toMatch(/insert into "agent_entries"/);
    } finally {
      log.mockRestore();
    }
    const [failed] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(failed).toMatchObject({ status: "failed", error: DATABASE_FAILURE_REASON });
    const [message] = await db.select().from(messages).where(eq(messages.runId, run.id));
    for (const shown of [failed!.error!, message!.content]) {
      expect(shown).not.toMatch(/insert|params|secret|agent_entries|\n\s+at /i);
    }
  });
});
