/** Sign-up and sign-in against the users table. */
import { eq } from "drizzle-orm";
import { z } from "zod";
import { users } from "../../db/schema";
import { db } from "../db.server";
import { MAX_EMAIL_LENGTH } from "./limits";
import { hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, verifyPassword } from "./password.server";
import { checkLoginAllowed, clearFailedLogins, countFailedLogin, countSignupAttempt } from "./rate-limit.server";

export const Credentials = z.object({
  email: z
    .string({ message: "Enter your email address." })
    .trim()
    .toLowerCase()
    .max(MAX_EMAIL_LENGTH, "That email address is too long.")
    .email("Enter a valid email address."),
  password: z
    .string({ message: "Enter a password." })
    .min(MIN_PASSWORD_LENGTH, `Use at least ${MIN_PASSWORD_LENGTH} characters.`)
    .max(MAX_PASSWORD_LENGTH, `Use at most ${MAX_PASSWORD_LENGTH} characters.`),
});
export type Credentials = z.infer<typeof Credentials>;

export class EmailTakenError extends Error {
  readonly status = 409;
  constructor() {
    super("An account with that email already exists. Sign in instead.");
  }
}

export class InvalidLoginError extends Error {
  readonly status = 401;
  constructor() {
    super("Wrong email or password.");
  }
}

/** Creates the account; attempts count towards the address's sign-up budget (TooManyAttemptsError). */
export async function signUp({ email, password }: Credentials, address: string): Promise<{ id: string }> {
  await countSignupAttempt(address);
  const passwordHash = await hashPassword(password);
  const [user] = await db
    .insert(users)
    .values({ email, passwordHash })
    .onConflictDoNothing({ target: users.email })
    .returning({ id: users.id });
  if (!user) throw new EmailTakenError();
  return user;
}

/** Checks the password; failures count towards the rate limit (TooManyAttemptsError). */
export async function verifyLogin({ email, password }: Credentials, address: string): Promise<{ id: string }> {
  await checkLoginAllowed(email, address);
  const [user] = await db.select().from(users).where(eq(users.email, email));
  if (!(await verifyPassword(user?.passwordHash, password)) || !user) {
    await countFailedLogin(email, address);
    throw new InvalidLoginError();
  }
  await clearFailedLogins(email);
  return { id: user.id };
}
