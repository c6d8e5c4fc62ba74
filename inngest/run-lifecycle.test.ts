import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../db/client";
import { runEvents } from "../db/schema";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import { markRunStarted, markRunStopping } from "./run-lifecycle";

describe.each(availableDrivers())("markRunStarted on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it("reports the stop that landed between reading the run and starting it, so the loop ends it as stopped", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    // The builder presses Stop just after the start step read the run (still queued) and before it writes.
    let stopped = false;
    const racing = new Proxy(db, {
      get(target, property, receiver) {
        if (property !== "transaction") return Reflect.get(target, property, receiver);
        return async (...args: Parameters<Db["transaction"]>) => {
          if (!stopped) {
            stopped = true;
            await markRunStopping(db, run);
          }
          return target.transaction(...args);
        };
      },
    });

    const started = await markRunStarted(racing, run.id);
    expect(started).toMatchObject({ active: false, status: "stopping" });
    const types = (await db.select().from(runEvents).where(eq(runEvents.runId, run.id))).map((r) => r.type);
    expect(types).toEqual(["stopping"]);
  });

  it("starts a queued run", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    expect(await markRunStarted(db, run.id)).toMatchObject({ active: true, status: "running" });
  });
});
