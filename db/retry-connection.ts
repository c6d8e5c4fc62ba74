/**
 * Riding out a short database outage (a restart, a dropped connection, a
 * failover) inside one piece of work, for writes whose work cannot be redone
 * cheaply: a command that already ran must not run again because its result
 * could not be saved for a few seconds. Only connection-class errors are
 * retried; a query the database refused fails at once.
 */
import { setTimeout as sleep } from "node:timers/promises";

/** Node's socket errors and postgres.js's own connection codes. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * SQLSTATEs of a server that is going away or not there yet: class 08
 * (connection exception), admin/crash shutdown, cannot connect now (starting
 * up or in recovery), too many connections.
 */
function isConnectionSqlState(code: string): boolean {
  return code.startsWith("08") || ["57P01", "57P02", "57P03", "53300"].includes(code);
}

/** The connection error's code, when the error (or one of its causes: Drizzle wraps the driver's) is one. */
export function connectionErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; current && typeof current === "object" && depth < 6; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_CODES.has(code) || isConnectionSqlState(code))) return code;
    // A refused connect to a name with several addresses (localhost: ::1 and 127.0.0.1) is an AggregateError.
    if (current instanceof AggregateError) {
      const inner = current.errors.map(connectionErrorCode).find((found) => found !== undefined);
      if (inner) return inner;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isConnectionError(error: unknown): boolean {
  return connectionErrorCode(error) !== undefined;
}

export interface ConnectionRetryOptions {
  /** Give up (rethrow) once this long has passed since the first failure. */
  withinMs?: number;
  /** First wait; doubled after each failure, up to maxDelayMs. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** Called before each wait (for the server log) with the connection error's code. */
  onRetry?: (code: string, attempt: number) => void;
}

export const CONNECTION_RETRY_WINDOW_MS = 30_000;

/** Runs `write`, again after a backoff while it fails with a connection error, for at most `withinMs`. */
export async function retryOnConnectionError<T>(
  write: () => Promise<T>,
  options: ConnectionRetryOptions = {},
): Promise<T> {
  const { withinMs = CONNECTION_RETRY_WINDOW_MS, firstDelayMs = 250, maxDelayMs = 4_000, onRetry } = options;
  let firstFailure: number | undefined;
  let delay = firstDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      const code = connectionErrorCode(error);
      if (!code) throw error;
      firstFailure ??= performance.now();
      const left = withinMs - (performance.now() - firstFailure);
      if (left <= 0) throw error;
      onRetry?.(code, attempt);
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, maxDelayMs);
    }
  }
}
