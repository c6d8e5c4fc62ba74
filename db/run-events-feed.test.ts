/**
 * The project feed (decision 028): subscribers of one project share one read
 * per new row, join it without a gap or a duplicate while rows commit, and a
 * subscriber that stops reading neither holds the others back nor keeps more
 * than its queue limit waiting.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../tests/support/database";
import { createBuilder, createQueuedRun } from "../tests/support/fixtures";
import type { Database } from "./client";
import { appendRunEvent, runEventsBus, subscribeRunEvents, type SubscribeOptions } from "./run-events";
import { runEvents, type RunEvent } from "./schema";

/** Counts the selects made on the database handle (every read of run_events is one). */
function countReads(database: Database) {
  const db = database.db;
  const select = db.select;
  let count = 0;
  db.select = ((...args: Parameters<typeof select>) => {
    count += 1;
    return select.apply(db, args);
  }) as typeof select;
  return {
    get count() {
      return count;
    },
    restore: () => {
      db.select = select;
    },
  };
}

/** A subscription read in the background into `rows`; `until` waits for a condition on them. */
function follow(database: Database, options: Omit<SubscribeOptions, "signal">) {
  const controller = new AbortController();
  const rows: RunEvent[] = [];
  const waiters = new Set<() => void>();
  const done = (async () => {
    for await (const row of subscribeRunEvents(database, { ...options, signal: controller.signal })) {
      rows.push(row);
      for (const wake of waiters) wake();
    }
  })();
  return {
    rows,
    until(predicate: (rows: RunEvent[]) => boolean, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!predicate(rows)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`subscriber has ${rows.length} rows; condition not met in ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      controller.abort();
      await done;
    },
  };
}

describe.each(availableDrivers())("the project feed on %s", (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(async () => {
    await t?.drop();
  });

  async function projectWithRun() {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const append = async (type: string, data: Record<string, unknown> = {}) =>
      (await appendRunEvent(db, { runId: run.id, projectId: project.id, type, data }))!;
    const stored = async () =>
      (
        await db
          .select({ id: runEvents.id })
          .from(runEvents)
          .where(eq(runEvents.projectId, project.id))
          .orderBy(asc(runEvents.id))
      ).map((r) => r.id);
    return { project, run, append, stored };
  }

  async function settled() {
    const bus = runEventsBus(t.database);
    await expect.poll(() => [bus.size, bus.feedCount, bus.queuedRows]).toEqual([0, 0, 0]);
  }

  it("reads each new row once for all of a project's subscribers", async () => {
    const { project, append } = await projectWithRun();
    await append("before");
    const subscribers = Array.from({ length: 25 }, () => follow(t.database, { projectId: project.id }));
    await Promise.all(subscribers.map((s) => s.until((rows) => rows.length === 1)));
    expect(runEventsBus(t.database).feedCount).toBe(1);

    const reads = countReads(t.database);
    const events = 10;
    try {
      for (let i = 0; i < events; i++) {
        const row = await append(`step-${i}`);
        await Promise.all(subscribers.map((s) => s.until((rows) => rows.at(-1)?.id === row.id)));
      }
      // 25 subscribers, 10 rows: one read per row (per-client reading made 250).
      expect(reads.count).toBe(events);
    } finally {
      reads.restore();
    }
    for (const s of subscribers) expect(s.rows.map((r) => r.type)).toEqual(["before", ...range(events)]);
    await Promise.all(subscribers.map((s) => s.stop()));
    await settled();
  });

  it("in the per-client mode every subscriber reads every row itself (the benchmark's baseline)", async () => {
    const bus = runEventsBus(t.database);
    bus.fanout = "per-client";
    try {
      const { project, append } = await projectWithRun();
      const subscribers = Array.from({ length: 5 }, () => follow(t.database, { projectId: project.id }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const reads = countReads(t.database);
      try {
        const row = await append("one");
        await Promise.all(subscribers.map((s) => s.until((rows) => rows.at(-1)?.id === row.id)));
        expect(reads.count).toBe(5);
      } finally {
        reads.restore();
      }
      await Promise.all(subscribers.map((s) => s.stop()));
    } finally {
      bus.fanout = "shared";
    }
    await settled();
  });

  it("has no gap and no duplicate for subscribers that join while rows commit", async () => {
    const { project, append, stored } = await projectWithRun();
    for (let i = 0; i < 20; i++) await append(`early-${i}`);
    const total = 120;
    let written = 0;
    const writing = (async () => {
      // Two writers, so commits interleave with the joins and the feed's reads.
      await Promise.all(
        [0, 1].map(async (w) => {
          for (let i = 0; i < total / 2; i++) {
            await append("tick", { w, i });
            written += 1;
            await new Promise((resolve) => setTimeout(resolve, 2));
          }
        }),
      );
    })();
    const subscribers: { afterId: number; sub: ReturnType<typeof follow> }[] = [];
    while (written < total) {
      // Some from the start, some after a row they "saw" (a reconnect), some with tiny batches (several catch-up reads).
      const ids = await stored();
      const afterId = subscribers.length % 3 === 1 ? (ids[Math.floor(ids.length / 2)] ?? 0) : 0;
      const batchSize = subscribers.length % 3 === 2 ? 3 : undefined;
      subscribers.push({ afterId, sub: follow(t.database, { projectId: project.id, afterId, batchSize }) });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await writing;
    const all = await stored();
    expect(all).toHaveLength(total + 20);
    expect(subscribers.length).toBeGreaterThan(3);
    for (const { afterId, sub } of subscribers) {
      const expected = all.filter((id) => id > afterId);
      await sub.until((rows) => rows.length >= expected.length);
      expect(sub.rows.map((r) => r.id)).toEqual(expected);
    }
    await Promise.all(subscribers.map(({ sub }) => sub.stop()));
    await settled();
  });

  it("a subscriber that stops reading holds no one back, keeps at most its queue limit, and then catches up", async () => {
    const { project, append, stored } = await projectWithRun();
    const fast = follow(t.database, { projectId: project.id });
    // A slow client: its stream pulls one row and then nothing for a while.
    const controller = new AbortController();
    const slow = subscribeRunEvents(t.database, { projectId: project.id, queueLimit: 5, signal: controller.signal });
    const first = slow.next();
    const row0 = await append("zero");
    expect((await first).value?.id).toBe(row0.id);

    for (let i = 1; i <= 30; i++) {
      const row = await append(`row-${i}`);
      await fast.until((rows) => rows.at(-1)?.id === row.id);
      // The slow subscriber's queue never holds more than its limit (the fast one takes its rows at once).
      expect(runEventsBus(t.database).queuedRows).toBeLessThanOrEqual(5);
    }
    const all = await stored();
    expect(fast.rows.map((r) => r.id)).toEqual(all);

    // Reading again, it gets every row after the one it had, in order, each once.
    const rest: number[] = [];
    while (rest.length < all.length - 1) {
      const next = await slow.next();
      if (next.done) break;
      rest.push(next.value.id);
    }
    expect(rest).toEqual(all.slice(1));
    // And is live again: a new row reaches both.
    const last = await append("after");
    expect((await slow.next()).value?.id).toBe(last.id);
    await fast.until((rows) => rows.at(-1)?.id === last.id);

    controller.abort();
    await slow.return(undefined);
    await fast.stop();
    await settled();
  });

  it("gives a run's subscriber only that run's rows from the shared feed", async () => {
    const { db } = t.database;
    const { project, run, append } = await projectWithRun();
    const other = await createQueuedRun(db, { userId: project.userId, projectId: project.id });
    const mine = follow(t.database, { projectId: project.id, runId: run.id });
    const everything = follow(t.database, { projectId: project.id });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await appendRunEvent(db, { runId: other.id, projectId: project.id, type: "theirs" });
    const row = await append("mine");
    await everything.until((rows) => rows.length === 2);
    await mine.until((rows) => rows.length === 1);
    expect(mine.rows.map((r) => r.id)).toEqual([row.id]);
    await Promise.all([mine.stop(), everything.stop()]);
    await settled();
  });
});

function range(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `step-${i}`);
}
