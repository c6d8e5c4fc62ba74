/**
 * Failed sign-ins per email and per client address, and sign-up attempts per
 * client address. The counts live in the database (the rate_limits table,
 * through rate-limiter-flexible's Drizzle store): every app replica spends
 * the same budget, and a restart forgets nothing.
 */
import { RateLimiterDrizzle, RateLimiterRes } from "rate-limiter-flexible";
import type { Database } from "../../db/client";
import { rateLimits } from "../../db/schema";
import { db } from "../db.server";

const WINDOW_SECONDS = 15 * 60;

export class TooManyAttemptsError extends Error {
  readonly status = 429;
  constructor(
    readonly retryAfterSeconds: number,
    what: "sign-in" | "sign-up" = "sign-in",
  ) {
    const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
    super(`Too many ${what} attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`);
  }
}

export interface AttemptLimits {
  /** Counts a sign-up attempt from the address; throws TooManyAttemptsError once its budget is spent. */
  countSignupAttempt(address: string): Promise<void>;
  /** Throws TooManyAttemptsError while the email's or the address's budget of failures is spent. */
  checkLoginAllowed(email: string, address: string): Promise<void>;
  /** Counts a failed sign-in against both budgets. */
  countFailedLogin(email: string, address: string): Promise<void>;
  /** A successful sign-in clears the email's count. */
  clearFailedLogins(email: string): Promise<void>;
}

/** The attempt budgets, counted in `store` (the app's database, or a test's). */
export function createAttemptLimits(store: Database["db"]): AttemptLimits {
  const limiter = (keyPrefix: string, points: number) =>
    new RateLimiterDrizzle({ storeClient: store, schema: rateLimits, keyPrefix, points, duration: WINDOW_SECONDS });
  const perEmail = limiter("login-email", 5);
  const perAddress = limiter("login-ip", 30);
  /**
   * Every sign-up attempt that gets as far as hashing the password (a new account or an email that has one):
   * the hash costs CPU, and "that email has an account" must not be asked of the app without bound.
   */
  const signups = limiter("signup-ip", 50);
  const logins = [
    { key: (email: string, _address: string) => email, limiter: perEmail },
    { key: (_email: string, address: string) => address, limiter: perAddress },
  ];

  return {
    async countSignupAttempt(address) {
      try {
        await signups.consume(address);
      } catch (error) {
        if (error instanceof RateLimiterRes) throw new TooManyAttemptsError(error.msBeforeNext / 1000, "sign-up");
        throw error;
      }
    },
    async checkLoginAllowed(email, address) {
      for (const { key, limiter } of logins) {
        const res = await limiter.get(key(email, address));
        if (res && res.consumedPoints >= limiter.points) throw new TooManyAttemptsError(res.msBeforeNext / 1000);
      }
    },
    async countFailedLogin(email, address) {
      for (const { key, limiter } of logins) await limiter.penalty(key(email, address));
    },
    async clearFailedLogins(email) {
      await perEmail.delete(email);
    },
  };
}

// Made on first use: importing this module must not open the database.
let appLimits: AttemptLimits | undefined;
const limits = () => (appLimits ??= createAttemptLimits(db));

export const countSignupAttempt: AttemptLimits["countSignupAttempt"] = (address) =>
  limits().countSignupAttempt(address);
export const checkLoginAllowed: AttemptLimits["checkLoginAllowed"] = (email, address) =>
  limits().checkLoginAllowed(email, address);
export const countFailedLogin: AttemptLimits["countFailedLogin"] = (email, address) =>
  limits().countFailedLogin(email, address);
export const clearFailedLogins: AttemptLimits["clearFailedLogins"] = (email) => limits().clearFailedLogins(email);
