/**
 * The builder page's live event stream (GET /projects/:projectId/events):
 * a project's run_events as Server-Sent Events. Rows after the start id are
 * replayed first, then new ones follow as they commit, so a refresh or a
 * dropped connection loses nothing: the browser's EventSource reconnects by
 * itself and sends the last id it saw as Last-Event-ID.
 *
 * Written by hand rather than with remix-utils' eventStream: 7.7 (the last
 * release for Remix v2) cannot write an `id:` line, and resuming from
 * Last-Event-ID depends on it. Reading is pull-based (app/http/sse.server.ts),
 * so a slow client holds its subscription back instead of piling rows up in
 * memory; new rows are read once per project for all streams (decision 028).
 */
import type { Database } from "../../db/client";
import { runEventsBus, subscribeRunEvents } from "../../db/run-events";
import { runStreamBus, type FrameSubscriber } from "../../db/run-stream";
import { RUN_STREAM_EVENT, type StreamFrame } from "../../db/run-stream-frame";
import type { RunEvent } from "../../db/schema";
import { openSseStreams, sseResponse } from "../http/sse.server";
import { HEARTBEAT_EVENT, RUN_EVENT, type ProjectEvent } from "./project-events";

/** How often an idle stream sends a heartbeat, so proxies and load balancers keep it open. */
export const HEARTBEAT_INTERVAL_MS = 15_000;

/**
 * Where a stream starts: after the `Last-Event-ID` header (a reconnecting
 * EventSource), else after the `after` query parameter (the first connect),
 * else from the beginning. A value that is not a non-negative integer is a
 * 400 Response.
 */
export function eventStreamStart(request: Request): number {
  const lastEventId = request.headers.get("Last-Event-ID");
  if (lastEventId !== null && lastEventId.trim() !== "") return parseEventId(lastEventId, "Last-Event-ID");
  const after = new URL(request.url).searchParams.get("after");
  if (after !== null) return parseEventId(after, "after");
  return 0;
}

function parseEventId(value: string, name: string): number {
  const text = value.trim();
  const id = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(id)) {
    throw new Response(`${name} must be an event id (a non-negative integer)`, {
      status: 400,
      statusText: "Bad Request",
    });
  }
  return id;
}

export interface ProjectEventStreamOptions {
  projectId: string;
  /** Send rows with ids above this one. */
  afterId?: number;
  /**
   * Aborts when the client goes: the route passes the load context's
   * `responseClosed` (the socket's own close), never `request.signal`, which
   * stops firing once Remix's intermediate Requests are garbage-collected.
   */
  signal: AbortSignal;
  /** The load context's `responseDrained`: the next row waits until the socket took the last one. */
  drained?: () => Promise<void>;
  /**
   * Heartbeat period. The route always uses HEARTBEAT_INTERVAL_MS; only
   * tests that call this function directly pass a shorter one, so nothing a
   * client or the environment sets can change it.
   */
  heartbeatMs?: number;
}

/**
 * The SSE response for a project's events. The caller has checked that the
 * user owns the project. Ends (subscription closed, feed membership removed,
 * heartbeat timer cleared) when `signal` aborts, the body is cancelled, a
 * write finds the stream closed, or reading the table fails; in the last case
 * the browser reconnects and resumes from its Last-Event-ID.
 */
export function projectEventStream(
  database: Database,
  { projectId, afterId = 0, signal, drained, heartbeatMs = HEARTBEAT_INTERVAL_MS }: ProjectEventStreamOptions,
): Response {
  const stop = new AbortController();
  const rows = subscribeRunEvents(database, { projectId, afterId, signal: stop.signal });
  // What the model is writing now (decision 035): frames without ids, the latest of each run first.
  let frames: FrameSubscriber | undefined;
  const subscribed = runStreamBus(database)
    .subscribe(projectId)
    .then(
      (subscriber) => {
        if (stop.signal.aborted) subscriber.close();
        else frames = subscriber;
        return frames;
      },
      (error: unknown) => {
        // The durable events still flow; only the live partials are missing.
        console.warn(`stream frames of project ${projectId} are not available: ${String(error)}`);
        return undefined;
      },
    );
  // A row read that lost the race to a frame is kept for the next call, never asked for twice.
  let pendingRow: Promise<IteratorResult<RunEvent, void>> | undefined;
  return sseResponse({
    kind: "events",
    signal,
    drained,
    heartbeatMs,
    heartbeat: heartbeatMessage(),
    heartbeatFirst: true,
    async next() {
      const subscriber = await subscribed;
      pendingRow ??= rows.next();
      const row = pendingRow.then((result) => ({ row: result }));
      const first = subscriber
        ? await Promise.race([row, subscriber.wait().then(() => ({ row: undefined }))])
        : await row;
      if (first.row) {
        pendingRow = undefined;
        return first.row.done ? null : [encodedRunEventMessage(first.row.value)];
      }
      const messages = subscriber?.take().map(encodedFrameMessage) ?? [];
      // A closed subscriber wakes its waits: end the stream as the rows would.
      return messages.length > 0
        ? messages
        : await pendingRow.then(
            () => null,
            () => null,
          );
    },
    // Runs the subscription's finally (it leaves the project's feed): at once
    // if it is paused at a yield, else as soon as its pending read sees the abort.
    release() {
      stop.abort();
      frames?.close();
      return rows.return(undefined);
    },
    onError: (error) => console.error(`event stream of project ${projectId} failed; the client will reconnect:`, error),
  });
}

/** A frame's message: no `id:` line, so Last-Event-ID replay of the durable rows stays exact. */
export function streamFrameMessage(frame: StreamFrame): string {
  return `event: ${RUN_STREAM_EVENT}\ndata: ${JSON.stringify(frame)}\n\n`;
}

/** Every stream of a project is handed the same frame object: encoded once. */
const encodedFrames = new WeakMap<StreamFrame, Uint8Array>();

function encodedFrameMessage(frame: StreamFrame): Uint8Array {
  let bytes = encodedFrames.get(frame);
  if (!bytes) encodedFrames.set(frame, (bytes = encoder.encode(streamFrameMessage(frame))));
  return bytes;
}

export function toProjectEvent(row: RunEvent): ProjectEvent {
  return {
    id: row.id,
    runId: row.runId,
    type: row.type,
    data: row.data,
    createdAt: new Date(row.createdAt).toISOString(),
  };
}

/** JSON.stringify escapes CR and LF, so the data fits on one `data:` line. */
export function runEventMessage(row: RunEvent): string {
  return `id: ${row.id}\nevent: ${RUN_EVENT}\ndata: ${JSON.stringify(toProjectEvent(row))}\n\n`;
}

/**
 * A row's message as bytes, made once per row: every stream of a project is
 * handed the same row object by the project's feed (decision 028), so 2,000
 * open tabs cost one JSON.stringify and one encode per row, not 2,000.
 */
const encodedMessages = new WeakMap<RunEvent, Uint8Array>();
const encoder = new TextEncoder();

function encodedRunEventMessage(row: RunEvent): Uint8Array {
  let bytes = encodedMessages.get(row);
  if (!bytes) encodedMessages.set(row, (bytes = encoder.encode(runEventMessage(row))));
  return bytes;
}

/** No `id:` line: the browser's Last-Event-ID keeps pointing at the last row. */
function heartbeatMessage(): string {
  return `event: ${HEARTBEAT_EVENT}\ndata: {}\n\n`;
}

export function openEventStreams(): number {
  return openSseStreams("events");
}

/**
 * For /healthz: open streams; run-event watchers (subscriptions in this
 * process: one per stream, plus stop watches of steps in flight); and feeds
 * (projects whose new rows are read once for all their watchers).
 */
export function eventStreamStats(database: Database): {
  eventStreams: number;
  runEventWatchers: number;
  runEventFeeds: number;
} {
  const bus = runEventsBus(database);
  return { eventStreams: openEventStreams(), runEventWatchers: bus.size, runEventFeeds: bus.feedCount };
}
