/** Shared handling for the sign-in and sign-up forms. */
import { ZodError } from "zod";
import { MAX_EMAIL_LENGTH } from "./limits";
import { Credentials } from "./users.server";

export type AuthFormResult = { error: string; email: string };

export function readCredentials(form: FormData): Credentials {
  return Credentials.parse({ email: form.get("email") ?? undefined, password: form.get("password") ?? undefined });
}

/** A known, user-facing failure as form data; anything else is rethrown (the error boundary shows it). */
export function authFormError(
  error: unknown,
  form: FormData,
  known: Array<new (...args: never[]) => Error>,
): AuthFormResult {
  // Echoed back into the form: never more than an email can be, whatever was posted.
  const email = String(form.get("email") ?? "").slice(0, MAX_EMAIL_LENGTH);
  if (error instanceof ZodError) return { error: error.issues.map((i) => i.message).join(" "), email };
  if (known.some((type) => error instanceof type)) return { error: (error as Error).message, email };
  throw error;
}
