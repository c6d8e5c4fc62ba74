/**
 * Failed sign-ins per email and per client address. In memory: one app
 * process serves the UI; a restart forgets the counts.
 */
import { RateLimiterMemory } from "rate-limiter-flexible";

const WINDOW_SECONDS = 15 * 60;
const limiters = [
  { key: (email: string, _address: string) => email, limiter: new RateLimiterMemory({ keyPrefix: "login-email", points: 5, duration: WINDOW_SECONDS }) },
  { key: (_email: string, address: string) => address, limiter: new RateLimiterMemory({ keyPrefix: "login-ip", points: 30, duration: WINDOW_SECONDS }) },
];

export class TooManyAttemptsError extends Error {
  readonly status = 429;
  constructor(readonly retryAfterSeconds: number) {
    const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
    super(`Too many sign-in attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`);
  }
}

/** Throws TooManyAttemptsError while the email's or the address's budget of failures is spent. */
export async function checkLoginAllowed(email: string, address: string): Promise<void> {
  for (const { key, limiter } of limiters) {
    const res = await limiter.get(key(email, address));
    if (res && res.consumedPoints >= limiter.points) throw new TooManyAttemptsError(res.msBeforeNext / 1000);
  }
}

/** Counts a failed sign-in against both budgets. */
export async function countFailedLogin(email: string, address: string): Promise<void> {
  for (const { key, limiter } of limiters) await limiter.penalty(key(email, address));
}

/** A successful sign-in clears the email's count. */
export async function clearFailedLogins(email: string): Promise<void> {
  await limiters[0]!.limiter.delete(email);
}
