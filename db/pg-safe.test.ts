import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findEntry, saveEntry } from "../inngest/agent/entries";
import { failRun } from "../inngest/run-lifecycle";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import { pgSafe, pgSafeText, REPLACEMENT_CHARACTER as R } from "./pg-safe";
import { appendRunEvent } from "./run-events";
import { agentEntries, messages, runs } from "./schema";

// Everything Postgres refuses in text or jsonb, next to what it takes.
const HOSTILE = `a\0b \uD800 c\uDC00 ok:\uD83D\uDE00 end\0`;
const ESCAPED = `a${R}b ${R} c${R} ok:\uD83D\uDE00 end${R}`;

describe("pgSafeText", () => {
  it("replaces NUL and lone surrogates with U+FFFD and keeps surrogate pairs", () => {
    expect(pgSafeText(HOSTILE)).toBe(ESCAPED);
    expect(pgSafeText("\uDE00\uD83D")).toBe(`${R}${R}`);
  });

  it("leaves ordinary text alone, including the six characters \\u0000", () => {
    for (const text of ["", "plain", "ünïcødé ✓", "const nul = '\\u0000';", "\uFFFD"])
      expect(pgSafeText(text)).toBe(text);
  });
});

describe("pgSafe", () => {
  it("escapes every string in a document, keys included, and keeps other values as they are", () => {
    const when = new Date();
    const value = { [`k\0`]: [HOSTILE, 1, null, true, { deep: "\0" }], when, n: 2 };
    expect(pgSafe(value)).toEqual({ [`k${R}`]: [ESCAPED, 1, null, true, { deep: R }], when, n: 2 });
    expect(pgSafe(value).when).toBe(when);
  });

  it("returns the same object when nothing needs escaping", () => {
    const value = { a: ["x", { b: "y" }], c: 1 };
    expect(pgSafe(value)).toBe(value);
  });
});

describe.each(availableDrivers())("the write helpers save hostile text on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it("refuses a NUL in jsonb when written without the helpers (the failure they prevent)", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    await expect(
      db
        .insert(agentEntries)
        .values({ runId: run.id, projectId: project.id, iteration: 1, kind: "result", payload: { content: "\0" } }),
    ).rejects.toThrow();
  });

  it("saves run events, run snapshots, entries and messages with NUL and lone surrogates escaped", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });

    const row = await appendRunEvent(
      db,
      {
        runId: run.id,
        projectId: project.id,
        type: "tool_result",
        dedupeKey: `k\0`,
        data: { summary: HOSTILE, [`key\0`]: [HOSTILE] },
      },
      { toolDescription: HOSTILE, todos: [{ id: "1", content: HOSTILE, status: "pending" }] },
    );
    expect(row?.data).toEqual({ summary: ESCAPED, [`key${R}`]: [ESCAPED] });
    expect(row?.dedupeKey).toBe(`k${R}`);

    await saveEntry(db, {
      runId: run.id,
      projectId: project.id,
      iteration: 1,
      kind: "result",
      payload: { content: HOSTILE },
    });
    // An upsert of the same entry (a re-executed step) is escaped as well.
    await saveEntry(db, {
      runId: run.id,
      projectId: project.id,
      iteration: 1,
      kind: "result",
      payload: { content: `${HOSTILE}!` },
    });
    expect((await findEntry(db, run.id, 1, "result"))?.payload).toEqual({ content: `${ESCAPED}!` });

    await failRun(db, run.id, `bad\0reason`);
    const [saved] = await db.select().from(runs).where(eq(runs.id, run.id));
    expect(saved).toMatchObject({ status: "failed", error: `bad${R}reason`, toolDescription: null });
    expect(saved!.todos).toEqual([{ id: "1", content: ESCAPED, status: "pending" }]);
    const [message] = await db.select().from(messages).where(eq(messages.runId, run.id));
    expect(message!.content).toBe(`The run failed: bad${R}reason`);
  });
});
