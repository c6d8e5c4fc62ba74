/**
 * The ephemeral side of live progress (decision 035): frames of what the
 * model is writing, published with NOTIFY on their own channel (Postgres:
 * every replica hears them; PGlite: its own process does) and never stored.
 * Each process keeps the latest frame per run in memory, so a stream that
 * opens mid-answer (a refresh) shows the current partial at once.
 */
import { sql } from "drizzle-orm";
import type { Database } from "./client";
import { fitFrame, parseFrame, type StreamFrame } from "./run-stream-frame";

export const RUN_STREAM_CHANNEL = "run_stream";
/** A latest frame this old is dropped: its publisher died without saying it was done. */
const STALE_FRAME_MS = 120_000;

export type { StreamFrame } from "./run-stream-frame";

/** Sends one frame (cut to fit a NOTIFY payload). */
export async function publishFrame(database: Database, frame: StreamFrame): Promise<void> {
  const payload = JSON.stringify(fitFrame(frame));
  await database.db.execute(sql`select pg_notify(${RUN_STREAM_CHANNEL}, ${payload})`);
}

/** One open event stream's view of its project's frames: the runs whose latest frame it has not sent yet. */
export class FrameSubscriber {
  private dirty = new Map<string, StreamFrame>();
  private wake: (() => void) | undefined;
  private waiting: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly projectId: string,
    private readonly bus: RunStreamBus,
  ) {}

  push(frame: StreamFrame) {
    // Only the latest per run is kept: a slow client skips frames, never piles them up.
    this.dirty.set(frame.runId, frame);
    this.wake?.();
  }

  /** The frames not yet sent (the latest of each run), oldest first. */
  take(): StreamFrame[] {
    const frames = [...this.dirty.values()].sort((a, b) => a.at - b.at);
    this.dirty.clear();
    return frames;
  }

  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /** Resolves when a frame is waiting (at once if one is) or the subscriber closes. One wait shared by callers. */
  wait(): Promise<void> {
    if (this.dirty.size > 0 || this.closed) return Promise.resolve();
    return (this.waiting ??= new Promise<void>((resolve) => {
      this.wake = () => {
        this.waiting = undefined;
        this.wake = undefined;
        resolve();
      };
    }));
  }

  close() {
    this.closed = true;
    this.bus.remove(this);
    this.wake?.();
  }
}

/** A process's frames of one database: one LISTEN, the latest frame per run, the subscribers per project. */
export class RunStreamBus {
  private readonly latest = new Map<string, StreamFrame>();
  /** Streams that said they are done: a late, reordered frame of theirs is ignored. Bounded. */
  private readonly ended = new Set<string>();
  private readonly subscribers = new Map<string, Set<FrameSubscriber>>();
  private ready: Promise<void> | undefined;

  constructor(private readonly database: Database) {}

  /** Starts listening (once). */
  listening(): Promise<void> {
    this.ready ??= this.database
      .listen(RUN_STREAM_CHANNEL, (payload) => this.receive(payload))
      .then(() => undefined)
      .catch((error: unknown) => {
        this.ready = undefined;
        throw error;
      });
    return this.ready;
  }

  receive(payload: string) {
    let frame: StreamFrame | undefined;
    try {
      frame = parseFrame(JSON.parse(payload));
    } catch {
      return;
    }
    if (!frame || this.ended.has(frame.streamId)) return;
    const current = this.latest.get(frame.runId);
    // Frames of one stream may arrive out of order (NOTIFYs from different pool connections): keep the newest.
    if (current && current.streamId === frame.streamId && current.seq >= frame.seq) return;
    if (frame.done) {
      this.ended.add(frame.streamId);
      if (this.ended.size > 1_000) this.ended.delete(this.ended.values().next().value as string);
      if (current && current.streamId !== frame.streamId) return;
      this.latest.delete(frame.runId);
    } else {
      this.latest.set(frame.runId, frame);
    }
    for (const subscriber of this.subscribers.get(frame.projectId) ?? []) subscriber.push(frame);
  }

  /** A subscriber for a project's frames, starting with the latest frame of each of its runs. */
  async subscribe(projectId: string): Promise<FrameSubscriber> {
    await this.listening();
    const subscriber = new FrameSubscriber(projectId, this);
    let set = this.subscribers.get(projectId);
    if (!set) this.subscribers.set(projectId, (set = new Set()));
    set.add(subscriber);
    this.sweep();
    for (const frame of this.latest.values()) if (frame.projectId === projectId) subscriber.push(frame);
    return subscriber;
  }

  remove(subscriber: FrameSubscriber) {
    const set = this.subscribers.get(subscriber.projectId);
    set?.delete(subscriber);
    if (set?.size === 0) this.subscribers.delete(subscriber.projectId);
  }

  /** The latest frame of a run this process heard, if its stream is still going. */
  latestFrame(runId: string): StreamFrame | undefined {
    this.sweep();
    return this.latest.get(runId);
  }

  get size(): number {
    let n = 0;
    for (const set of this.subscribers.values()) n += set.size;
    return n;
  }

  private sweep() {
    const now = Date.now();
    for (const [runId, frame] of this.latest) if (now - frame.at > STALE_FRAME_MS) this.latest.delete(runId);
  }
}

/** Kept on globalThis, like the run-events bus: Vite's dev server loads modules in a graph of its own. */
const holder = globalThis as typeof globalThis & { __dynoRunStreamBuses?: WeakMap<Database, RunStreamBus> };

export function runStreamBus(database: Database): RunStreamBus {
  const buses = (holder.__dynoRunStreamBuses ??= new WeakMap());
  let bus = buses.get(database);
  if (!bus) buses.set(database, (bus = new RunStreamBus(database)));
  return bus;
}
