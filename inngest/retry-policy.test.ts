import { NonRetriableError, RetryAfterError } from "inngest";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import {
  databaseRetryDelayMs,
  isDatabaseUnreachable,
  OTHER_ERROR_RETRIES,
  retryDecision,
  STEP_RETRIES,
} from "./retry-policy";

/** A real connection error: postgres.js against a port nothing listens on. */
async function refusedConnection(): Promise<unknown> {
  const sql = postgres("postgres://postgres@127.0.0.1:1/none", { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await sql`select 1`;
    throw new Error("connected to port 1");
  } catch (error) {
    return error;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

describe("retrying a failed step", () => {
  it("retries a step that could not reach the database soon, wrapped or not, with a short human message", async () => {
    const refused = await refusedConnection();
    expect(isDatabaseUnreachable(refused)).toBe(true);
    const wrapped = new Error("Failed query: insert into run_events …", { cause: refused });
    const decision = retryDecision(wrapped, 0);
    expect(decision).toBeInstanceOf(RetryAfterError);
    expect((decision as RetryAfterError).message).toBe("The database could not be reached; trying again in 1 s.");
    expect((decision as RetryAfterError).retryAfter).toBe("1"); // seconds, as the engine reads it;
  });

  it("backs off to 15 s and keeps trying for minutes, longer than the engine's own 3 retries did", () => {
    expect([0, 1, 2, 3, 4, 5, 19].map(databaseRetryDelayMs)).toEqual([
      1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000,
    ]);
    const total = Array.from({ length: STEP_RETRIES }, (_, attempt) => databaseRetryDelayMs(attempt)).reduce(
      (a, b) => a + b,
    );
    expect(total).toBeGreaterThan(3 * 60_000);
  });

  it("keeps the engine's backoff for other errors, and ends them after as many retries as before", () => {
    const error = new Error("the model server answered 500");
    expect(retryDecision(error, 0)).toBe(error);
    expect(retryDecision(error, OTHER_ERROR_RETRIES - 1)).toBe(error);
    const last = retryDecision(error, OTHER_ERROR_RETRIES);
    expect(last).toBeInstanceOf(NonRetriableError);
    expect((last as Error).message).toBe("the model server answered 500");
    const final = new NonRetriableError("bad key");
    expect(retryDecision(final, 0)).toBe(final);
    expect(isDatabaseUnreachable(Object.assign(new Error("syntax"), { code: "42601" }))).toBe(false);
  });
});
