/**
 * Failed sign-ins per email and per client address, and sign-up attempts per
 * client address. In memory: one app process serves the UI; a restart
 * forgets the counts.
 */
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

const WINDOW_SECONDS = 15 * 60;
const limiters = [
  {
    key: (email: string, _address: string) => email,
    limiter: new RateLimiterMemory({ keyPrefix: "login-email", points: 5, duration: WINDOW_SECONDS }),
  },
  {
    key: (_email: string, address: string) => address,
    limiter: new RateLimiterMemory({ keyPrefix: "login-ip", points: 30, duration: WINDOW_SECONDS }),
  },
];

/**
 * Every sign-up attempt that gets as far as hashing the password (a new account or an email that has one):
 * the hash costs CPU, and "that email has an account" must not be asked of the app without bound.
 */
const signupLimiter = new RateLimiterMemory({ keyPrefix: "signup-ip", points: 50, duration: WINDOW_SECONDS });

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

/** Counts a sign-up attempt from the address; throws TooManyAttemptsError once its budget is spent. */
export async function countSignupAttempt(address: string): Promise<void> {
  try {
    await signupLimiter.consume(address);
  } catch (error) {
    if (error instanceof RateLimiterRes) throw new TooManyAttemptsError(error.msBeforeNext / 1000, "sign-up");
    throw error;
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
