import { and, asc, eq, getTableColumns, gt, sql, type SQL } from "drizzle-orm";
import { PgTransaction } from "drizzle-orm/pg-core";
import type { Database, Db } from "./client";
import { pgSafe } from "./pg-safe";
import { canMoveRun, type RunStatus } from "./run-status";
import { runEvents, runs, type RunEvent } from "./schema";

export const RUN_EVENTS_CHANNEL = "run_events";
/** First key of the two-key advisory lock that orders a project's run_events. */
const RUN_EVENTS_LOCK_CLASS = 0x0d1e0;

/**
 * The NOTIFY of a row just written, as a RETURNING column: the payload (the same keys a snapshot's update sends:
 * projectId, runId, id, type) is built by Postgres from the row.
 */
const notifyRow = sql<string>`pg_notify(${RUN_EVENTS_CHANNEL}, json_build_object('projectId', ${runEvents.projectId}, 'runId', ${runEvents.runId}, 'id', ${runEvents.id}, 'type', ${runEvents.type})::text)`;

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
  const write = async (tx: Tx): Promise<RunEvent | null> => {
    await lockProjectEvents(tx, event.projectId);
    if (snapshot?.status || event.onlyIfStatus) {
      // "No key update", the lock the snapshot's UPDATE takes anyway: it lets by a writer that has already saved a
      // row pointing at the run (a foreign key's key-share lock) and now waits for the project's lock, where "for
      // update" would wait for that writer and deadlock with it (40P01).
      const [current] = await tx
        .select({ status: runs.status })
        .from(runs)
        .where(eq(runs.id, event.runId))
        .for("no key update");
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
    // Without a snapshot the insert carries the NOTIFY, its payload built from the row (one statement, not two);
    // with one, the snapshot's update carries it (most events come with a snapshot).
    const withSnapshot = !!snapshot && Object.keys(snapshot).length > 0;
    const returned = withSnapshot ? getTableColumns(runEvents) : { ...getTableColumns(runEvents), notified: notifyRow };
    const [row] = event.dedupeKey
      ? await tx
          .insert(runEvents)
          .values(values)
          .onConflictDoUpdate({
            target: [runEvents.runId, runEvents.dedupeKey],
            set: { data: values.data, type: values.type, writes: sql`${runEvents.writes} + 1` },
          })
          .returning(returned)
      : await tx.insert(runEvents).values(values).returning(returned);
    if (!row) throw new Error("run_events insert returned no row");
    if ("notified" in row) delete (row as { notified?: unknown }).notified;
    if (withSnapshot) {
      // The type rides along so a watcher of one kind of row (a stop) needs no read to learn what committed.
      const payload = JSON.stringify({ projectId: row.projectId, runId: row.runId, id: row.id, type: row.type });
      const notify = sql`pg_notify(${RUN_EVENTS_CHANNEL}, ${payload})`;
      await tx.update(runs).set(snapshot).where(eq(runs.id, event.runId)).returning({ notified: notify });
    }
    return row;
  };
  // Inside a caller's transaction (a step's), write in it directly: a savepoint would cost a round trip, and
  // callers let a failed write fail their whole transaction.
  return db instanceof PgTransaction ? write(db as Tx) : db.transaction(write);
}

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** Projects whose event lock a transaction holds (pg_advisory_xact_lock lasts until it ends). */
const projectLocksHeld = new WeakMap<object, Set<string>>();

/**
 * Takes the project's event lock for the rest of the transaction. Every
 * writer takes it before any row lock (the run's, the project's): one order
 * for all, so no two writers of a project can deadlock (Postgres 40P01). A
 * writer that locks rows before its first event calls this first. (Saving a
 * row that points at the run first is fine: its key-share lock does not
 * conflict with the run-row lock taken under this one.)
 */
export async function lockProjectEvents(tx: Tx, projectId: string): Promise<void> {
  await lockProjectEventsAfter(tx, projectId);
}

/**
 * The project's event lock, taken in the same statement as `first` (an advisory lock every writer that takes both
 * takes before this one: the versions lock), which then is taken first: one statement for the two.
 */
export async function lockProjectEventsAfter(tx: Pick<Db, "execute">, projectId: string, first?: SQL): Promise<void> {
  // Held until the transaction ends: a second event in the same transaction need not ask again.
  let held = projectLocksHeld.get(tx);
  if (held?.has(projectId)) {
    // Taking `first` now would take the two in the other order, which can deadlock with a writer taking both.
    if (first) throw new Error(`project ${projectId}: a lock that goes before the event lock asked for after it`);
    return;
  }
  const events = sql`pg_advisory_xact_lock(${RUN_EVENTS_LOCK_CLASS}, hashtext(${projectId}))`;
  await tx.execute(first ? sql`select ${first}, ${events}` : sql`select ${events}`);
  if (!held) projectLocksHeld.set(tx, (held = new Set()));
  held.add(projectId);
}

export interface SubscribeOptions {
  projectId: string;
  /** Only this run's rows. */
  runId?: string;
  /** Yield rows with an id above this one (the SSE Last-Event-ID). */
  afterId?: number;
  signal?: AbortSignal;
  /** Re-check the table at least this often even without a notification (a safety net). */
  pollIntervalMs?: number;
  /** Rows per read of the table. */
  batchSize?: number;
  /**
   * Rows the project's shared feed may leave waiting for this subscriber. A
   * subscriber that falls further behind (a slow client) drops them and reads
   * the table itself from where it stands, at its own pace.
   */
  queueLimit?: number;
}

/**
 * How a process's subscriptions learn of new rows: "shared" (the default) reads
 * them once per project for every subscriber; "per-client" lets each subscriber
 * read them itself, as Dyno did before decision 028 (kept so benchmarks can put
 * the two side by side).
 */
export type RunEventsFanout = "shared" | "per-client";

export const RUN_EVENTS_BATCH_SIZE = 500;
export const RUN_EVENTS_QUEUE_LIMIT = 1000;
const DEFAULT_POLL_INTERVAL_MS = 15_000;

/**
 * Yields a project's run_events with ids above `afterId`, in id order: first
 * the rows already committed, then new ones as they commit. Ends when `signal`
 * aborts. Notifications only wake readers; the table is the source of truth,
 * so a lost or coalesced notification delays a row, never drops it.
 *
 * A subscriber catches up with reads of its own, then takes new rows from its
 * project's feed (ProjectFeed): one read per notification for every
 * subscriber of the project in this process. It joins the feed before its
 * first read, so the seam has no gap (a row the feed hands over before the read
 * is in the read) and no duplicate (rows at or below the last id yielded are
 * skipped).
 */
export async function* subscribeRunEvents(
  database: Database,
  options: SubscribeOptions,
): AsyncGenerator<RunEvent, void, undefined> {
  const {
    projectId,
    runId,
    afterId = 0,
    signal,
    pollIntervalMs = DEFAULT_POLL_INTERVAL_MS,
    batchSize = RUN_EVENTS_BATCH_SIZE,
    queueLimit = RUN_EVENTS_QUEUE_LIMIT,
  } = options;
  const member = await runEventsBus(database).join(projectId, {
    runId,
    pollIntervalMs,
    queueLimit: Math.max(queueLimit, 1),
    signal,
  });
  if (!member.shared) return yield* readingAlone(database, member, options);
  try {
    let lastId = afterId;
    let caughtUp = false;
    while (!signal?.aborted) {
      if (!caughtUp) {
        // Rows the feed dropped for this subscriber are all committed by now, so this read has them.
        member.resume();
        const rows = await readRunEvents(database, { projectId, runId, afterId: lastId, limit: batchSize });
        for (const row of rows) {
          if (signal?.aborted) return;
          lastId = row.id;
          yield row;
        }
        caughtUp = rows.length < batchSize;
        continue;
      }
      const rows = member.take();
      if (rows === null) {
        caughtUp = false;
        continue;
      }
      if (rows.length === 0) {
        await member.wait();
        continue;
      }
      for (const row of rows) {
        if (row.id <= lastId) continue;
        if (signal?.aborted) return;
        lastId = row.id;
        yield row;
      }
    }
  } finally {
    member.leave();
  }
}

/** The per-client mode: every subscriber reads the table itself after each notification. */
async function* readingAlone(
  database: Database,
  member: FeedMember,
  {
    projectId,
    runId,
    afterId = 0,
    signal,
    pollIntervalMs = DEFAULT_POLL_INTERVAL_MS,
    batchSize = RUN_EVENTS_BATCH_SIZE,
  }: SubscribeOptions,
): AsyncGenerator<RunEvent, void, undefined> {
  try {
    let lastId = afterId;
    while (!signal?.aborted) {
      const rows = await readRunEvents(database, { projectId, runId, afterId: lastId, limit: batchSize });
      for (const row of rows) {
        if (signal?.aborted) return;
        lastId = row.id;
        yield row;
      }
      if (rows.length < batchSize) await member.wait(pollIntervalMs);
    }
  } finally {
    member.leave();
  }
}

function readRunEvents(
  database: Database,
  { projectId, runId, afterId, limit }: { projectId: string; runId?: string; afterId: number; limit: number },
): Promise<RunEvent[]> {
  return database.db
    .select()
    .from(runEvents)
    .where(
      and(
        eq(runEvents.projectId, projectId),
        gt(runEvents.id, afterId),
        runId ? eq(runEvents.runId, runId) : undefined,
      ),
    )
    .orderBy(asc(runEvents.id))
    .limit(limit);
}

/** One subscription's place in its project's feed: the rows handed to it and not yet taken, bounded. */
class FeedMember {
  private queue: RunEvent[] = [];
  private overflowed = false;
  /** Woken since the last wait (per-client mode: a notification came). */
  private pending = false;
  private wake: (() => void) | undefined;

  /** The subscription's abort wakes its wait: one listener for the member's life, not one per wait. */
  private readonly onAbort = () => this.poke();

  constructor(
    private readonly feed: ProjectFeed,
    readonly runId: string | undefined,
    readonly pollIntervalMs: number,
    private readonly queueLimit: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  get queued(): number {
    return this.queue.length;
  }

  /** New rows of the project, in id order. Over the limit, they are all dropped: the subscriber reads for itself. */
  push(rows: readonly RunEvent[]) {
    if (this.overflowed) return;
    const mine = this.runId ? rows.filter((row) => row.runId === this.runId) : rows;
    if (mine.length === 0) return;
    if (this.queue.length + mine.length > this.queueLimit) this.overflow();
    else {
      for (const row of mine) this.queue.push(row);
      this.poke();
    }
  }

  /** Drops what is waiting: the subscriber catches up by reading the table. */
  overflow() {
    this.overflowed = true;
    this.queue = [];
    this.poke();
  }

  poke() {
    this.pending = true;
    this.wake?.();
  }

  /** About to read the table: from here on the feed's rows are kept again. */
  resume() {
    this.overflowed = false;
  }

  /** The rows waiting (maybe none), or null when some were dropped. */
  take(): RunEvent[] | null {
    if (this.overflowed) return null;
    const rows = this.queue;
    this.queue = [];
    return rows;
  }

  /** Resolves at the next push, overflow or poke (or one since the last wait), the abort, or after `timeoutMs`. */
  wait(timeoutMs?: number): Promise<void> {
    if (this.pending || this.queue.length > 0 || this.overflowed || this.signal?.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        this.pending = false;
        resolve();
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(done, timeoutMs);
      this.wake = done;
    });
  }

  /** False in the per-client mode: the feed only wakes this subscriber, which reads for itself. */
  get shared(): boolean {
    return this.feed.shared;
  }

  leave() {
    this.signal?.removeEventListener("abort", this.onAbort);
    this.feed.remove(this);
    this.wake?.();
  }
}

/**
 * A project's new rows, read once per notification for all of its
 * subscribers in this process and handed to each (FeedMember). Its watermark
 * is the highest id it has read; ids are handed out in commit order
 * (decision 002), so reading after it misses nothing. It ends with its last
 * member.
 */
class ProjectFeed {
  readonly members = new Set<FeedMember>();
  readonly ready: Promise<void>;
  private watermark: number | undefined;
  private reading = false;
  private again = false;
  private closed = false;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private pollMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly bus: RunEventsBus,
    private readonly database: Database,
    readonly projectId: string,
    readonly shared: boolean,
  ) {
    this.ready = this.start();
  }

  private async start() {
    await this.bus.listening();
    if (!this.shared) return;
    // LISTEN is on first: a row committed after this read is both above the watermark and notified.
    const [row] = await this.database.db
      .select({ max: sql<string | number | null>`max(${runEvents.id})` })
      .from(runEvents)
      .where(eq(runEvents.projectId, this.projectId));
    this.watermark = Number(row?.max ?? 0);
    if (this.again) this.refresh();
    else this.schedulePoll();
  }

  add(member: FeedMember) {
    this.members.add(member);
    if (member.pollIntervalMs < this.pollMs) this.schedulePoll();
  }

  remove(member: FeedMember) {
    this.members.delete(member);
    if (this.members.size > 0) return;
    this.closed = true;
    clearTimeout(this.pollTimer);
    this.bus.dropFeed(this);
  }

  /** Something may have committed: read it (once, however many ask meanwhile). */
  refresh() {
    if (this.closed) return;
    if (!this.shared) {
      for (const member of this.members) member.poke();
      return;
    }
    if (this.watermark === undefined || this.reading) {
      this.again = true;
      return;
    }
    void this.readNew();
  }

  private async readNew() {
    this.reading = true;
    try {
      do {
        this.again = false;
        const rows = await readRunEvents(this.database, {
          projectId: this.projectId,
          afterId: this.watermark!,
          limit: RUN_EVENTS_BATCH_SIZE,
        });
        if (this.closed) return;
        const last = rows.at(-1);
        if (last) {
          this.watermark = last.id;
          for (const member of this.members) member.push(rows);
        }
        if (rows.length === RUN_EVENTS_BATCH_SIZE) this.again = true;
      } while (this.again && !this.closed);
    } catch (error) {
      // Each member reads for itself instead; if the database is down its own read fails and ends its stream.
      if (!this.closed) console.warn(`run events feed of project ${this.projectId}: read failed: ${String(error)}`);
      for (const member of this.members) member.overflow();
    } finally {
      this.reading = false;
      this.schedulePoll();
    }
  }

  /** The safety net: a read after the shortest poll interval of the members, however few notifications came. */
  private schedulePoll() {
    clearTimeout(this.pollTimer);
    if (this.closed || !this.shared || this.members.size === 0) return;
    let pollMs = Number.POSITIVE_INFINITY;
    for (const member of this.members) pollMs = Math.min(pollMs, member.pollIntervalMs);
    this.pollMs = pollMs;
    this.pollTimer = setTimeout(() => this.refresh(), pollMs);
    this.pollTimer.unref?.();
  }
}

/**
 * Hears a run's rows as they commit: their type, from the notification (no read). Called with undefined after a
 * reconnect, when notifications may have been missed: the listener checks for itself.
 */
export type RunNotifyListener = (type: string | undefined) => void;

/** One LISTEN per database, fanned out to project feeds and run listeners. */
class RunEventsBus {
  private readonly feeds = new Map<string, ProjectFeed>();
  private readonly runListeners = new Map<string, Set<RunNotifyListener>>();
  private listen: Promise<unknown> | undefined;
  fanout: RunEventsFanout = "shared";

  constructor(private readonly database: Database) {}

  /** Subscriptions in this process (each one waiting on a feed). */
  get size(): number {
    let n = 0;
    for (const feed of this.feeds.values()) n += feed.members.size;
    return n;
  }

  /** Rows handed to subscriptions and not yet taken by them (each subscription holds at most its queue limit). */
  get queuedRows(): number {
    let n = 0;
    for (const feed of this.feeds.values()) for (const member of feed.members) n += member.queued;
    return n;
  }

  /** Projects with a feed in this process. */
  get feedCount(): number {
    return this.feeds.size;
  }

  async join(
    projectId: string,
    {
      runId,
      pollIntervalMs,
      queueLimit,
      signal,
    }: { runId?: string; pollIntervalMs: number; queueLimit: number; signal?: AbortSignal },
  ): Promise<FeedMember> {
    let feed = this.feeds.get(projectId);
    if (!feed) {
      feed = new ProjectFeed(this, this.database, projectId, this.fanout === "shared");
      this.feeds.set(projectId, feed);
    }
    const member = new FeedMember(feed, runId, pollIntervalMs, queueLimit, signal);
    feed.add(member);
    try {
      await feed.ready;
    } catch (error) {
      member.leave();
      // A failed start leaves no feed behind: the next subscriber tries again.
      if (this.feeds.get(projectId) === feed) this.feeds.delete(projectId);
      throw error;
    }
    return member;
  }

  /**
   * Calls `listener` with the type of each row of the run notified from now on; returns the unsubscribe. Registered
   * at once (synchronously): a caller that checks the run's state after this call misses nothing that commits after
   * the check, once LISTEN is up (until then, and for a lost notification, the caller needs a safety net of its own).
   */
  onRun(runId: string, listener: RunNotifyListener): () => void {
    let listeners = this.runListeners.get(runId);
    if (!listeners) this.runListeners.set(runId, (listeners = new Set()));
    listeners.add(listener);
    this.listening().catch(() => {});
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.runListeners.get(runId) === listeners) this.runListeners.delete(runId);
    };
  }

  dropFeed(feed: ProjectFeed) {
    if (this.feeds.get(feed.projectId) === feed) this.feeds.delete(feed.projectId);
  }

  listening(): Promise<unknown> {
    this.listen ??= this.database
      .listen(
        RUN_EVENTS_CHANNEL,
        (payload) => this.onNotify(payload),
        // On every (re)connect, read everything again: notifications may have been missed.
        () => this.refreshAll(),
      )
      .catch((error: unknown) => {
        this.listen = undefined;
        throw error;
      });
    return this.listen;
  }

  private onNotify(payload: string) {
    let parsed: { projectId?: unknown; runId?: unknown; type?: unknown };
    try {
      parsed = JSON.parse(payload) as typeof parsed;
    } catch {
      return;
    }
    const { projectId, runId, type } = parsed;
    if (typeof projectId !== "string") return;
    this.feeds.get(projectId)?.refresh();
    if (typeof runId === "string") {
      for (const listener of this.runListeners.get(runId) ?? []) listener(typeof type === "string" ? type : undefined);
    }
  }

  private refreshAll() {
    for (const feed of this.feeds.values()) feed.refresh();
    for (const listeners of this.runListeners.values()) for (const listener of listeners) listener(undefined);
  }
}

const buses = new WeakMap<Database, RunEventsBus>();

export function runEventsBus(database: Database): RunEventsBus {
  let bus = buses.get(database);
  if (!bus) buses.set(database, (bus = new RunEventsBus(database)));
  return bus;
}
