/** Spends a client address's sign-in budget (30 failures per 15 min) through the app's own /login form. */
import { randomUUID } from "node:crypto";

export const ADDRESS_BUDGET = 30;

/** A failed sign-in for a fresh email, sent with `headers` (e.g. X-Forwarded-For); returns the status. */
export async function failLogin(appUrl: string, headers: Record<string, string> = {}): Promise<number> {
  const response = await fetch(`${appUrl}/login`, {
    method: "POST",
    body: new URLSearchParams({ email: `budget-${randomUUID()}@example.test`, password: "not the password" }),
    redirect: "manual",
    headers,
  });
  await response.body?.cancel();
  return response.status;
}
