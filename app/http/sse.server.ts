/**
 * What every Server-Sent Events response shares: the headers, a heartbeat
 * so proxies keep an idle stream open, ending when the client goes (the
 * load context's `responseClosed`, decision 016) or a write fails, waiting
 * for the socket to drain before asking for more, and counting open streams
 * for /healthz. What a stream sends is its own `next`.
 *
 * Reading is pull-based: `next` is called only once the client took the last
 * messages, so a slow client holds its own source back instead of piling
 * messages up here.
 */

/** The streams /healthz counts, by route. */
export type SseStreamKind = "events" | "app-log";

export interface SseStreamOptions {
  kind: SseStreamKind;
  /** The load context's `responseClosed`, never `request.signal` (decision 016). */
  signal: AbortSignal;
  /**
   * Resolves once the response's socket can take more (the load context's
   * `responseDrained`); without it, the stream relies on the reader alone.
   */
  drained?: () => Promise<void>;
  heartbeatMs: number;
  /** The heartbeat message (no `id:` line, so Last-Event-ID keeps pointing at the last real message). */
  heartbeat: string;
  /** Send a heartbeat as soon as the stream opens. */
  heartbeatFirst?: boolean;
  /**
   * The next messages to send, at least one; null ends the stream. `stop`
   * aborts when the stream closes, so a wait inside can end early. A throw
   * ends the stream (the browser reconnects and resumes).
   */
  next(stop: AbortSignal): Promise<SseMessage[] | null>;
  /** Releases what `next` holds; the stream counts as open until it settles. */
  release?(): Promise<unknown> | void;
  /** Called when `next` throws while the stream is open. */
  onError?(error: unknown): void;
}

/** A message's text, or its bytes when many streams send the same one (encoded once, not once per stream). */
export type SseMessage = string | Uint8Array;

export const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-store",
  Connection: "keep-alive",
  // nginx buffers proxied responses unless told not to.
  "X-Accel-Buffering": "no",
} as const;

export function sseResponse({
  kind,
  signal,
  drained,
  heartbeatMs,
  heartbeat,
  heartbeatFirst = false,
  next,
  release,
  onError,
}: SseStreamOptions): Response {
  const encoder = new TextEncoder();
  const stop = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let timer: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  countOpenStream(kind, +1);

  // A write to a stream whose client is gone ends it, rather than feeding a
  // writer that drops everything (or throwing inside the heartbeat timer).
  const send = (message: SseMessage) => {
    if (closed) return;
    if (signal.aborted) return close();
    try {
      controller.enqueue(typeof message === "string" ? encoder.encode(message) : message);
    } catch {
      close();
    }
  };
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    signal.removeEventListener("abort", close);
    stop.abort();
    try {
      controller.close();
    } catch {
      // Already cancelled by the reader.
    }
    if (!release) return countOpenStream(kind, -1);
    void Promise.resolve()
      .then(release)
      .catch(() => {})
      .finally(() => countOpenStream(kind, -1));
  };

  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      if (signal.aborted) return close();
      signal.addEventListener("abort", close, { once: true });
      if (heartbeatFirst) send(heartbeat);
      timer = setInterval(() => send(heartbeat), heartbeatMs);
      timer.unref?.();
    },
    async pull() {
      try {
        await drained?.();
        if (closed) return;
        const messages = await next(stop.signal);
        if (closed) return;
        if (messages === null) return close();
        for (const message of messages) send(message);
      } catch (error) {
        if (!closed) onError?.(error);
        close();
      }
    },
    cancel() {
      close();
    },
  });

  return new Response(body, { headers: SSE_HEADERS });
}

/**
 * Open streams in this process, by kind. Kept on globalThis: Vite's dev server
 * loads route modules in a module graph of its own, where module state would
 * be invisible to the server and to tests.
 */
const counters = globalThis as typeof globalThis & { __dynoSseStreams?: Partial<Record<SseStreamKind, number>> };

function countOpenStream(kind: SseStreamKind, delta: 1 | -1) {
  const counts = (counters.__dynoSseStreams ??= {});
  counts[kind] = (counts[kind] ?? 0) + delta;
}

export function openSseStreams(kind: SseStreamKind): number {
  return counters.__dynoSseStreams?.[kind] ?? 0;
}
