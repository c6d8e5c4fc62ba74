/**
 * Signed-in builders for tests that talk to the app over HTTP: a Cookie
 * header value (`__dyno_session=…`) to send with requests.
 */

/**
 * A session for `userId`, started the way sign-in starts one
 * (app/auth/session.server.ts). Call it after startStack(): the app's
 * database and secret come from the environment it sets.
 */
export async function signedInCookie(userId: string): Promise<string> {
  // Imported late: env() is read once, and must see what startStack() set.
  const { startSession } = await import("../../app/auth/session.server");
  return cookiePair(await startSession(userId));
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
