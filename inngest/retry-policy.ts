/**
 * How a failed step of the coding agent is retried. The engine's own backoff
 * (v1.13.5: 15 s, 30 s, 1 min, 2 min … each plus up to 30 s of jitter,
 * hard-coded in pkg/backoff) is far longer than a database restart, so a
 * step that failed because the database could not be reached asks to be
 * retried soon (RetryAfterError) and keeps asking for a few minutes; any
 * other error keeps the engine's backoff and its usual few retries.
 */
import { NonRetriableError, RetryAfterError } from "inngest";
import { isConnectionError } from "../db/retry-connection";

/** The function's `retries`: the engine's maximum, for a database outage of a few minutes. */
export const STEP_RETRIES = 20;
/** Retries for any other error (a model server error, a bug): as many as before. */
export const OTHER_ERROR_RETRIES = 3;

/** Delays before retrying a step that found the database away: 1, 2, 4, 8, then 15 s (about 4 minutes in all). */
export function databaseRetryDelayMs(attempt: number): number {
  return Math.min(1_000 * 2 ** attempt, 15_000);
}

/** True when the error (or one it wraps) says the database could not be reached, not that a query was wrong. */
export const isDatabaseUnreachable = isConnectionError;

/** What a step throws instead of `error` on its `attempt` (0-based). */
export function retryDecision(error: unknown, attempt: number): unknown {
  if (error instanceof NonRetriableError || error instanceof RetryAfterError) return error;
  if (isDatabaseUnreachable(error)) {
    const delayMs = databaseRetryDelayMs(attempt);
    return new RetryAfterError(`The database could not be reached; trying again in ${delayMs / 1000} s.`, delayMs, {
      cause: error,
    });
  }
  if (attempt >= OTHER_ERROR_RETRIES) {
    return new NonRetriableError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  return error;
}
