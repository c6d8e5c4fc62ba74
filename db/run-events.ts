import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { Database, Db } from "./client";
import { pgSafe } from "./pg-safe";
import { canMoveRun, type RunStatus } from "./run-status";
import { runEvents, runs, type RunEvent } from "./schema";

export const RUN_EVENTS_CHANNEL = "run_events";
/** First key of the two-key advisory lock that orders a project's run_events. */
const RUN_EVENTS_LOCK_CLASS = 0x0d1e0;

export type RunSnapshot = Partial<Omit<typeof runs.$inferInsert, "id" | "projectId" | "userId" | "createdAt">>;

export interface NewRunEvent {
  runId: string;
  projectId: string;
  type: string;
  data?: Record<string, unknown>;
  /** Writers inside a step pass a key: a re-executed step updates its row instead of adding one. */
  dedupeKey?: string;
  /** Write only while the run is in one of these statuses (checked under the same lock as the write). */
  onlyIfStatus?: readonly RunStatus[];
}

/**
 * Appends a run_events row, applies `snapshot` to the run, and notifies
 * listeners, all in one transaction (NOTIFY is delivered on commit).
 *
 * If `snapshot.status` is a move the run may not make (see canMoveRun), or
 * the run is not in one of `event.onlyIfStatus`, nothing is written and the
 * result is null.
 *
 * A per-project advisory lock is taken before the row gets its id, so a
 * project's ids are handed out in commit order: a reader that has seen id N
 * can never later find a committed row below N.
 *
 * Text in the event and the snapshot is saved Postgres-safe (pg-safe.ts): a
 * NUL in a tool's output is escaped, not a failed write.
 */
export async function appendRunEvent(
  db: Pick<Db, "transaction">,
  unsafeEvent: NewRunEvent,
  unsafeSnapshot?: RunSnapshot,
): Promise<RunEvent | null> {
  const event = pgSafe(unsafeEvent);
  const snapshot = pgSafe(unsafeSnapshot);
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${RUN_EVENTS_LOCK_CLASS}, hashtext(${event.projectId}))`);
    if (snapshot?.status || event.onlyIfStatus) {
      const [current] = await tx
        .select({ status: runs.status })
        .from(runs)
        .where(eq(runs.id, event.runId))
        .for("update");
      if (!current) throw new Error(`run ${event.runId} not found`);
      if (snapshot?.status && !canMoveRun(current.status, snapshot.status)) return null;
      if (event.onlyIfStatus && !event.onlyIfStatus.includes(current.status)) return null;
    }
    const values = {
      runId: event.runId,
      projectId: event.projectId,
      type: event.type,
      data: event.data ?? {},
      dedupeKey: event.dedupeKey ?? null,
    };
    const [row] = event.dedupeKey
      ? await tx
          .insert(runEvents)
          .values(values)
          .onConflictDoUpdate({
            target: [runEvents.runId, runEvents.dedupeKey],
            set: { data: values.data, type: values.type, writes: sql`${runEvents.writes} + 1` },
          })
          .returning()
      : await tx.insert(runEvents).values(values).returning();
    if (!row) throw new Error("run_events insert returned no row");
    if (snapshot && Object.keys(snapshot).length > 0) {
      await tx.update(runs).set(snapshot).where(eq(runs.id, event.runId));
    }
    const payload = JSON.stringify({ projectId: row.projectId, runId: row.runId, id: row.id });
    await tx.execute(sql`select pg_notify(${RUN_EVENTS_CHANNEL}, ${payload})`);
    return row;
  });
}

export interface SubscribeOptions {
  projectId: string;
  /** Only this run's rows. */
  runId?: string;
  /** Yield rows with an id above this one (the SSE Last-Event-ID). */
  afterId?: number;
  signal?: AbortSignal;
  /** Re-check the table this often even without a notification (a safety net). */
  pollIntervalMs?: number;
  batchSize?: number;
}

/**
 * Yields a project's run_events with ids above `afterId`, in id order: first
 * the rows already committed, then new ones as they commit. Ends when `signal`
 * aborts. Notifications only wake the reader; the table is the source of
 * truth, so a lost or coalesced notification delays a row, never drops it.
 */
export async function* subscribeRunEvents(
  database: Database,
  { projectId, runId, afterId = 0, signal, pollIntervalMs = 15_000, batchSize = 500 }: SubscribeOptions,
): AsyncGenerator<RunEvent, void, undefined> {
  const watcher = await runEventsBus(database).watch(projectId);
  try {
    let lastId = afterId;
    while (!signal?.aborted) {
      const rows = await database.db
        .select()
        .from(runEvents)
        .where(
          and(
            eq(runEvents.projectId, projectId),
            gt(runEvents.id, lastId),
            runId ? eq(runEvents.runId, runId) : undefined,
          ),
        )
        .orderBy(asc(runEvents.id))
        .limit(batchSize);
      for (const row of rows) {
        if (signal?.aborted) return;
        lastId = row.id;
        yield row;
      }
      if (rows.length < batchSize) await watcher.next(signal, pollIntervalMs);
    }
  } finally {
    watcher.close();
  }
}

interface Watcher {
  /** Resolves at the next notification for the project (or one that came since the last call), abort or timeout. */
  next(signal: AbortSignal | undefined, timeoutMs: number): Promise<void>;
  close(): void;
}

/** One LISTEN per database, fanned out to watchers by project. */
class RunEventsBus {
  private readonly watchers = new Map<string, Set<() => void>>();
  private listening: Promise<unknown> | undefined;

  constructor(private readonly database: Database) {}

  get size(): number {
    let n = 0;
    for (const set of this.watchers.values()) n += set.size;
    return n;
  }

  async watch(projectId: string): Promise<Watcher> {
    let pending = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      pending = true;
      wake?.();
    };
    let set = this.watchers.get(projectId);
    if (!set) this.watchers.set(projectId, (set = new Set()));
    set.add(notify);
    const close = () => {
      set.delete(notify);
      if (set.size === 0 && this.watchers.get(projectId) === set) this.watchers.delete(projectId);
      wake?.();
    };
    try {
      await this.start();
    } catch (error) {
      close();
      throw error;
    }
    return {
      close,
      next(signal, timeoutMs) {
        if (pending || signal?.aborted) {
          pending = false;
          return Promise.resolve();
        }
        return new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            wake = undefined;
            pending = false;
            resolve();
          };
          const timer = setTimeout(done, timeoutMs);
          signal?.addEventListener("abort", done, { once: true });
          wake = done;
        });
      },
    };
  }

  private start(): Promise<unknown> {
    this.listening ??= this.database
      .listen(
        RUN_EVENTS_CHANNEL,
        (payload) => this.onNotify(payload),
        // On every (re)connect, wake everyone: notifications may have been missed.
        () => this.wakeAll(),
      )
      .catch((error: unknown) => {
        this.listening = undefined;
        throw error;
      });
    return this.listening;
  }

  private onNotify(payload: string) {
    let projectId: unknown;
    try {
      projectId = (JSON.parse(payload) as { projectId?: unknown }).projectId;
    } catch {
      return;
    }
    if (typeof projectId !== "string") return;
    for (const notify of this.watchers.get(projectId) ?? []) notify();
  }

  private wakeAll() {
    for (const set of this.watchers.values()) for (const notify of set) notify();
  }
}

const buses = new WeakMap<Database, RunEventsBus>();

export function runEventsBus(database: Database): RunEventsBus {
  let bus = buses.get(database);
  if (!bus) buses.set(database, (bus = new RunEventsBus(database)));
  return bus;
}
