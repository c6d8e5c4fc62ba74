/**
 * Cookie sessions backed by the sessions table: the signed cookie holds a
 * session id, so signing out (or deleting the user) ends it server-side.
 * HttpOnly, SameSite=Lax, Secure in production.
 */
import { createCookieSessionStorage, redirect } from "@remix-run/node";
import { and, eq, gt, lte } from "drizzle-orm";
import { sessions, users } from "../../db/schema";
import { db } from "../db.server";
import { env, type Env } from "../env.server";
import { sessionSecret } from "./secret.server";

const SESSION_DAYS = 30;
const SESSION_KEY = "sessionId";

type SessionData = { [SESSION_KEY]: string };
let storage: ReturnType<typeof createCookieSessionStorage<SessionData>> | undefined;

/** The session cookie's attributes: Secure only in production (development runs on plain http://localhost). */
export function sessionCookieOptions(e: Pick<Env, "NODE_ENV">, secret: string) {
  return {
    name: "__dyno_session",
    httpOnly: true,
    sameSite: "lax" as const,
    secure: e.NODE_ENV === "production",
    path: "/",
    secrets: [secret],
    maxAge: SESSION_DAYS * 24 * 60 * 60,
  };
}

function sessionStorage() {
  storage ??= createCookieSessionStorage<SessionData>({ cookie: sessionCookieOptions(env(), sessionSecret()) });
  return storage;
}

export interface SignedInUser {
  id: string;
  email: string;
}

/** The signed-in user, or null (no cookie, a bad signature, an ended or expired session). */
export async function getUser(request: Request): Promise<SignedInUser | null> {
  const session = await sessionStorage().getSession(request.headers.get("Cookie"));
  const sessionId = session.get(SESSION_KEY);
  if (typeof sessionId !== "string" || !/^[0-9a-f-]{36}$/i.test(sessionId)) return null;
  const [row] = await db
    .select({ id: users.id, email: users.email })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(and(eq(sessions.id, sessionId), gt(sessions.expiresAt, new Date())));
  return row ?? null;
}

/** The signed-in user; anyone else is sent to /login and brought back afterwards. */
export async function requireUser(request: Request): Promise<SignedInUser> {
  const user = await getUser(request);
  if (user) return user;
  const url = new URL(request.url);
  // A resource (SSE, download, fetcher) answers 401 instead of a redirect to a page.
  if (request.headers.get("Accept")?.includes("text/event-stream"))
    throw new Response("Sign in first", { status: 401 });
  throw redirect(`/login?${new URLSearchParams({ redirectTo: url.pathname + url.search })}`);
}

export async function requireUserId(request: Request): Promise<string> {
  return (await requireUser(request)).id;
}

/** Starts a session for the user; returns the Set-Cookie header value that carries it. */
export async function startSession(userId: string): Promise<string> {
  // Sweep this builder's expired sessions while we are here: nothing else would.
  await db.delete(sessions).where(and(eq(sessions.userId, userId), lte(sessions.expiresAt, new Date())));
  const [row] = await db
    .insert(sessions)
    .values({ userId, expiresAt: new Date(Date.now() + SESSION_DAYS * 24 * 60 * 60 * 1000) })
    .returning({ id: sessions.id });
  const session = await sessionStorage().getSession();
  session.set(SESSION_KEY, row!.id);
  return sessionStorage().commitSession(session);
}

/** Starts a session and redirects with its cookie. */
export async function signInAndRedirect(userId: string, redirectTo: string): Promise<Response> {
  return redirect(safeRedirect(redirectTo), { headers: { "Set-Cookie": await startSession(userId) } });
}

/** Ends the session (its row and the cookie) and goes to the sign-in page. */
export async function signOutAndRedirect(request: Request): Promise<Response> {
  const session = await sessionStorage().getSession(request.headers.get("Cookie"));
  const sessionId = session.get(SESSION_KEY);
  if (typeof sessionId === "string" && /^[0-9a-f-]{36}$/i.test(sessionId)) {
    await db.delete(sessions).where(eq(sessions.id, sessionId));
  }
  return redirect("/login", { headers: { "Set-Cookie": await sessionStorage().destroySession(session) } });
}

const SAFE_REDIRECT_BASE = "http://dyno.invalid";

/**
 * Only paths on this site: "//evil.example", "https://…" and anything a
 * browser would read as another host fall back to the project list. Browsers
 * drop tabs and newlines from a Location and read a backslash as "/", so
 * "/<TAB>/evil.example" means "//evil.example": control characters and
 * backslashes are refused outright, and what is left must resolve on our
 * own origin.
 */
export function safeRedirect(to: FormDataEntryValue | string | null | undefined, fallback = "/projects"): string {
  // Control characters are exactly what this refuses (a tab or newline that browsers strip to reach another host).
  // eslint-disable-next-line no-control-regex
  if (typeof to !== "string" || !to.startsWith("/") || /[\u0000-\u001F\u007F\\]/.test(to)) return fallback;
  let url: URL;
  try {
    url = new URL(to, SAFE_REDIRECT_BASE);
  } catch {
    return fallback;
  }
  return url.origin === SAFE_REDIRECT_BASE ? to : fallback;
}
