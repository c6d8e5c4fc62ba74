/**
 * Publishes what the model is writing for one think step as stream frames
 * (db/run-stream.ts, decision 035): throttled (at most one frame per
 * interval, always the latest partial), at most one NOTIFY in flight, and
 * never in the way of the step: a failed publish is logged once and the
 * model call goes on. The durable record is the step's own rows, as before.
 */
import { randomUUID } from "node:crypto";
import type { Database } from "../../db/client";
import { publishFrame } from "../../db/run-stream";
import { partialFields, type StreamFrame } from "../../db/run-stream-frame";

/** At most one frame per this many milliseconds per run. */
export const STREAM_FRAME_INTERVAL_MS = 100;

export interface StreamPublisher {
  /** The latest partial action BAML parsed (sent now, or when the interval allows). */
  partial(partial: unknown): void;
  /** Ends the stream: a `done` frame tells the live cards to drop what it showed. */
  close(): Promise<void>;
  /** Frames sent so far (tests, the benchmark). */
  readonly sent: number;
}

export interface StreamTarget {
  runId: string;
  projectId: string;
  iteration: number;
}

export function streamPublisher(
  database: Database,
  target: StreamTarget,
  { intervalMs = STREAM_FRAME_INTERVAL_MS }: { intervalMs?: number } = {},
): StreamPublisher {
  const streamId = randomUUID();
  let seq = 0;
  let sent = 0;
  let lastSentAt = Number.NEGATIVE_INFINITY;
  let pending: Omit<StreamFrame, "seq" | "at"> | undefined;
  let lastText: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: Promise<void> | undefined;
  let closed = false;
  let warned = false;

  const send = (fields: Omit<StreamFrame, "seq" | "at">): Promise<void> => {
    const frame: StreamFrame = { ...fields, seq: ++seq, at: Date.now() };
    lastSentAt = performance.now();
    sent++;
    const publishing = publishFrame(database, frame).catch((error: unknown) => {
      if (warned) return;
      warned = true;
      console.warn(`stream frames of run ${target.runId} could not be sent (the run goes on): ${String(error)}`);
    });
    inFlight = publishing;
    void publishing.then(() => {
      if (inFlight === publishing) inFlight = undefined;
    });
    return publishing;
  };

  const flush = () => {
    timer = undefined;
    if (closed || !pending) return;
    // One NOTIFY at a time: the next frame waits for it, and is the latest by then.
    if (inFlight) {
      void inFlight.then(schedule);
      return;
    }
    const fields = pending;
    pending = undefined;
    void send(fields);
  };

  function schedule() {
    if (closed || !pending || timer) return;
    const wait = Math.max(0, lastSentAt + intervalMs - performance.now());
    if (wait === 0 && !inFlight) return flush();
    timer = setTimeout(flush, wait);
    timer.unref?.();
  }

  return {
    partial(partial) {
      if (closed) return;
      const { tool, path, text } = partialFields(partial);
      if (!tool && !text) return;
      const key = `${tool ?? ""}\u0000${path ?? ""}\u0000${text}`;
      if (key === lastText) return;
      lastText = key;
      pending = {
        ...target,
        streamId,
        ...(tool ? { tool } : {}),
        ...(path !== undefined ? { path } : {}),
        text,
        skipped: 0,
      };
      schedule();
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      pending = undefined;
      // Nothing shown, nothing to drop.
      if (sent === 0) return;
      await inFlight;
      await send({ ...target, streamId, text: "", skipped: 0, done: true });
    },
    get sent() {
      return sent;
    },
  };
}
