/**
 * Reads a Server-Sent Events response the way a browser's EventSource
 * does (fields id, event, data; comments and retry ignored), over fetch, so
 * a test can set Last-Event-ID itself and abort the connection at will.
 */

export interface SseMessage {
  /** The message's own `id:` field; undefined when it had none. */
  id?: string;
  /** "message" when the message named no event. */
  event: string;
  data: string;
}

/** An incremental parser: feed it text as it arrives, get whole messages back. */
export class SseParser {
  private buffer = "";
  private id: string | undefined;
  private event = "";
  private data: string[] = [];

  push(text: string): SseMessage[] {
    this.buffer += text;
    const messages: SseMessage[] = [];
    // A line ends at CRLF, LF or CR; a trailing CR may be the start of a CRLF still on its way.
    const lines = this.buffer.split(/\r\n|\n|\r(?!$)/);
    this.buffer = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "") {
        if (this.data.length > 0)
          messages.push({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
        this.id = undefined;
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") this.id = value;
      else if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
    }
    return messages;
  }
}

export interface EventStreamClient {
  response: Response;
  /** The next message, failing after `timeoutMs` or when the stream ends. */
  next(timeoutMs?: number): Promise<SseMessage>;
  /** The next message named `event`, skipping others (heartbeats, say). */
  nextOf(event: string, timeoutMs?: number): Promise<SseMessage>;
  /** Messages already received and not yet taken, without waiting. */
  pending(): SseMessage[];
  /** Drops the connection, as a closed browser tab would. */
  close(): void;
}

export interface ConnectOptions {
  cookie?: string;
  lastEventId?: string | number;
  headers?: Record<string, string>;
}

/**
 * Opens an event stream. Resolves once the response headers are in; a
 * response that is not an event stream (401, 404…) is returned with nothing
 * to read, for the test to check its status.
 */
export async function connectEventStream(
  url: string,
  { cookie, lastEventId, headers = {} }: ConnectOptions = {},
): Promise<EventStreamClient> {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: {
      Accept: "text/event-stream",
      ...(cookie ? { Cookie: cookie } : {}),
      ...(lastEventId !== undefined ? { "Last-Event-ID": String(lastEventId) } : {}),
      ...headers,
    },
    redirect: "manual",
    signal: abort.signal,
  });
  const queue: SseMessage[] = [];
  const waiters: (() => void)[] = [];
  let ended: Error | undefined;
  const wakeAll = () => waiters.splice(0).forEach((wake) => wake());

  const isStream = response.ok && response.headers.get("Content-Type")?.startsWith("text/event-stream");
  if (isStream && response.body) {
    const parser = new SseParser();
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          queue.push(...parser.push(decoder.decode(chunk, { stream: true })));
          wakeAll();
        }
        ended = new Error("the event stream ended");
      } catch (error) {
        ended = abort.signal.aborted ? new Error("the event stream was closed") : (error as Error);
      }
      wakeAll();
    })();
  } else {
    ended = new Error(`not an event stream: ${response.status} ${response.headers.get("Content-Type")}`);
  }

  const next = async (timeoutMs = 10_000): Promise<SseMessage> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      if (ended) throw ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event-stream message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return queue.shift()!;
  };

  return {
    response,
    next,
    async nextOf(event, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const message = await next(Math.max(1, deadline - Date.now()));
        if (message.event === event) return message;
      }
    },
    pending: () => queue.splice(0),
    close() {
      abort.abort();
      if (!isStream) void response.body?.cancel().catch(() => {});
    },
  };
}
