import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendRunEvent } from "../../db/run-events";
import { runs } from "../../db/schema";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder, createQueuedRun } from "../../tests/support/fixtures";
import { stoppedBy, watchForStop } from "./stop-signal";

describe.each(availableDrivers())("the stop watch on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  async function twoRuns() {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const mine = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const other = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    return { mine, other, projectId: project.id };
  }

  it("aborts when its run's stop commits, and not for another run's rows or stop", async () => {
    const { db } = t.database;
    const { mine, other, projectId } = await twoRuns();
    const watch = watchForStop(t.database, mine);
    try {
      // LISTEN comes up with the first watch of the process; the rows below must come after it to be notified.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await appendRunEvent(db, { runId: mine.id, projectId, type: "tool_call" });
      await appendRunEvent(db, { runId: other.id, projectId, type: "stopping" });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(watch.signal.aborted).toBe(false);
      const before = Date.now();
      await appendRunEvent(db, { runId: mine.id, projectId, type: "stopping" });
      await expect.poll(() => watch.signal.aborted, { timeout: 1_500, interval: 20 }).toBe(true);
      // Heard from the notification, well before the safety poll's 2 s.
      expect(Date.now() - before).toBeLessThan(1_000);
      expect(stoppedBy(watch.signal)).toBe(true);
    } finally {
      watch.close();
    }
  });

  it("hears a stop whose notification never came (status written directly) through its safety poll", async () => {
    const { db } = t.database;
    const { mine } = await twoRuns();
    const watch = watchForStop(t.database, mine);
    try {
      await db.update(runs).set({ status: "stopping" }).where(eq(runs.id, mine.id));
      await expect.poll(() => stoppedBy(watch.signal), { timeout: 5_000, interval: 50 }).toBe(true);
    } finally {
      watch.close();
    }
  });
});
