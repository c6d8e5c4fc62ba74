/**
 * Signed-in builders for tests that talk to the app over HTTP: a Cookie
 * header value (`__dyno_session=…`) to send with requests.
 */
import { createCookieSessionStorage } from "@remix-run/node";
import type { Database } from "../../db/client";
import { sessions } from "../../db/schema";

/**
 * A session for `userId`, made directly: a sessions row plus the cookie
 * app/auth/session.server.ts would set for it (same name, key and secret,
 * read from the same DYNO_DATA_DIR or SESSION_SECRET). Call it after
 * startStack(), which sets the environment the secret comes from.
 */
export async function signedInCookie(database: Database, userId: string): Promise<string> {
  // Imported late: env() is read once, and must see what startStack() set.
  const { sessionSecret } = await import("../../app/auth/secret.server");
  const [row] = await database.db
    .insert(sessions)
    .values({ userId, expiresAt: new Date(Date.now() + 24 * 60 * 60 * 1000) })
    .returning({ id: sessions.id });
  // Keep in step with sessionStorage() in app/auth/session.server.ts.
  const storage = createCookieSessionStorage<{ sessionId: string }>({
    cookie: { name: "__dyno_session", httpOnly: true, sameSite: "lax", path: "/", secrets: [sessionSecret()] },
  });
  const session = await storage.getSession();
  session.set("sessionId", row!.id);
  return cookiePair(await storage.commitSession(session));
}

/** Signs up through the app's own /signup form and returns the session cookie it sets. */
export async function signUp(appUrl: string, email: string, password: string): Promise<string> {
  const response = await fetch(`${appUrl}/signup`, {
    method: "POST",
    body: new URLSearchParams({ email, password }),
    redirect: "manual",
  });
  const setCookie = response.headers.getSetCookie().find((c) => c.startsWith("__dyno_session="));
  if (response.status !== 302 || !setCookie) {
    throw new Error(`sign-up as ${email} failed: ${response.status} ${(await response.text()).slice(0, 500)}`);
  }
  return cookiePair(setCookie);
}

/** "name=value; Path=/; HttpOnly…" (a Set-Cookie value) -> "name=value" (a Cookie header value). */
function cookiePair(setCookie: string): string {
  return setCookie.split(";")[0]!;
}
