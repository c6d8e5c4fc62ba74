/**
 * Why a run failed, in words a builder can use. The reason written on the run
 * (its card, the transcript) is either a message written for the builder,
 * carried by one of the two errors below, or a short generic sentence: never
 * an exception's own text, which can hold a whole SQL insert with its
 * parameters, a request body or a stack trace. The details go to the server
 * log instead.
 *
 * The errors are recognised by name, because the engine hands onFailure a
 * copy rebuilt from JSON (name, message, stack), not the thrown object.
 */
import { NonRetriableError } from "inngest";
import type { Db } from "../db/client";
import { failRun, RunNotFoundError } from "./run-lifecycle";

/** A failure explained to the builder that no retry can change: the step is not retried. */
export class RunFailedError extends NonRetriableError {
  constructor(message: string) {
    super(message);
    this.name = "RunFailedError";
  }
}

/** A failure explained to the builder that a later try may not meet (a model server that is down): the step is retried. */
export class RunRetryableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RunRetryableError";
  }
}

const WRITTEN_FOR_BUILDERS = new Set(["RunFailedError", "RunRetryableError"]);
const MAX_REASON_CHARS = 500;

export const DATABASE_FAILURE_REASON =
  "The run could not save its progress to the database. Send the prompt again to retry; the details are in the server log.";
export const INTERNAL_FAILURE_REASON =
  "The run stopped because of an internal error. Send the prompt again to retry; the details are in the server log.";

type ErrorLike = { name?: unknown; message?: unknown; code?: unknown; cause?: unknown };

/** Drizzle's "Failed query: … params: …", a PostgresError, or an error with a SQLSTATE or postgres.js connection code. */
function isDatabaseError(error: ErrorLike, depth = 0): boolean {
  if (depth > 5 || !error || typeof error !== "object") return false;
  const { name, message, code, cause } = error;
  if (name === "PostgresError" || name === "DrizzleQueryError") return true;
  if (typeof message === "string" && message.startsWith("Failed query:")) return true;
  if (
    typeof code === "string" &&
    (/^[0-9A-Z]{5}$/.test(code) || code.startsWith("CONNECTION_") || code === "CONNECT_TIMEOUT")
  )
    return true;
  return isDatabaseError(cause as ErrorLike, depth + 1);
}

/** The reason to write on a failed run for this error (as thrown, or as the engine passes it back). */
export function failureReason(error: unknown): string {
  const candidate = (error ?? {}) as ErrorLike;
  const message = typeof candidate.message === "string" ? candidate.message.trim() : "";
  if (WRITTEN_FOR_BUILDERS.has(String(candidate.name)) && message) {
    return message.length > MAX_REASON_CHARS ? `${message.slice(0, MAX_REASON_CHARS - 1)}…` : message;
  }
  return isDatabaseError(candidate) ? DATABASE_FAILURE_REASON : INTERNAL_FAILURE_REASON;
}

/** The whole error, for the server log: name, message, stack and causes. */
export function describeForLog(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth++) {
    const { name, message, stack } = current as { name?: unknown; message?: unknown; stack?: unknown };
    parts.push(
      typeof stack === "string" && stack ? stack : `${String(name ?? "Error")}: ${String(message ?? current)}`,
    );
    current = (current as ErrorLike).cause;
  }
  return parts.join("\ncaused by: ");
}

/**
 * Ends a run the engine gave up on (the function's onFailure): the details
 * to the server log, a short reason on the run. A run that does not exist
 * has nothing to mark.
 */
export async function recordRunFailure(db: Db, runId: string, error: unknown): Promise<void> {
  console.error(`run ${runId} failed: ${describeForLog(error)}`);
  try {
    await failRun(db, runId, failureReason(error));
  } catch (failure) {
    if (!(failure instanceof RunNotFoundError)) throw failure;
  }
}
