/**
 * Accounts over real HTTP (Express, Remix, the app's own database): sign-up
 * and sign-in set the session cookie, failures say why without telling a
 * wrong password from an unknown email, the sign-in rate limit, signing out
 * ends the session on the server, and redirects stay on this site.
 */
import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessions, users } from "../../db/schema";
import { signUp } from "../support/accounts";
import { startStack, type Stack } from "../support/stack";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  console.log(`[accounts] ${stack.database.driver} database, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

const PASSWORD = "correct horse battery";
const freshEmail = () => `acct-${randomUUID()}@example.test`;

/** A form POST as a browser without JavaScript sends it; redirects are returned, not followed. */
function post(
  path: string,
  fields: Record<string, string>,
  { cookie, origin }: { cookie?: string; origin?: string } = {},
) {
  return fetch(`${stack.app.url}${path}`, {
    method: "POST",
    body: new URLSearchParams(fields),
    redirect: "manual",
    headers: { ...(cookie ? { Cookie: cookie } : {}), ...(origin ? { Origin: origin } : {}) },
  });
}

function get(path: string, cookie?: string) {
  return fetch(`${stack.app.url}${path}`, { redirect: "manual", headers: cookie ? { Cookie: cookie } : {} });
}

const sessionSetCookie = (response: Response) =>
  response.headers.getSetCookie().find((c) => c.startsWith("__dyno_session="));
const cookiePair = (setCookie: string) => setCookie.split(";")[0]!;

/** Whether a cookie opens the project list (200), or is sent to sign in (302 to /login). */
async function opensProjects(cookie: string): Promise<boolean> {
  const response = await get("/projects", cookie);
  await response.body?.cancel();
  if (response.status === 200) return true;
  expect(response.status).toBe(302);
  expect(response.headers.get("Location")).toBe("/login?redirectTo=%2Fprojects");
  return false;
}

async function login(email: string, password: string, redirectTo?: string) {
  return post("/login", { email, password, ...(redirectTo !== undefined ? { redirectTo } : {}) });
}

describe("sign-up", () => {
  it("creates the account and signs in with an HttpOnly, SameSite=Lax cookie on /, not Secure in development", async () => {
    const email = freshEmail();
    const response = await post("/signup", {
      email: ` ${email.toUpperCase()} `,
      password: PASSWORD,
      redirectTo: "/projects",
    });
    expect(response.status).toBe(302);
    expect(response.headers.get("Location")).toBe("/projects");
    const setCookie = sessionSetCookie(response);
    expect(setCookie).toBeDefined();
    const attributes = setCookie!.split(";").map((part) => part.trim().toLowerCase());
    expect(attributes).toContain("httponly");
    expect(attributes).toContain("samesite=lax");
    expect(attributes).toContain("path=/");
    expect(attributes.some((a) => a === "secure")).toBe(false);
    expect(await opensProjects(cookiePair(setCookie!))).toBe(true);

    const [user] = await stack.database.db.select().from(users).where(eq(users.email, email));
    expect(user!.passwordHash).toMatch(/^\$argon2id\$/);
  });

  it("refuses a second account for an email that has one (any case), with a 400 that says so", async () => {
    const email = freshEmail();
    await signUp(stack.app.url, email, PASSWORD);
    const response = await post("/signup", { email: email.toUpperCase(), password: "another password" });
    expect(response.status).toBe(400);
    expect(sessionSetCookie(response)).toBeUndefined();
    expect(await response.text()).toContain("An account with that email already exists.");
    expect(await stack.database.db.select().from(users).where(eq(users.email, email))).toHaveLength(1);
  });

  it("refuses a short password and a bad email with the reason", async () => {
    const short = await post("/signup", { email: freshEmail(), password: "short" });
    expect(short.status).toBe(400);
    expect(await short.text()).toContain("Use at least 8 characters.");
    const bad = await post("/signup", { email: "not-an-email", password: PASSWORD });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("Enter a valid email address.");
  });
});

describe("sign-in", () => {
  it("signs in and goes where redirectTo says, on this site", async () => {
    const email = freshEmail();
    await signUp(stack.app.url, email, PASSWORD);
    const response = await login(email, PASSWORD, "/projects/abc?x=1");
    expect(response.status).toBe(302);
    expect(response.headers.get("Location")).toBe("/projects/abc?x=1");
    expect(await opensProjects(cookiePair(sessionSetCookie(response)!))).toBe(true);
  });

  it.each([["//evil.example"], ["https://evil.example/"], ["/\\evil.example"], ["/\t/evil.example"]])(
    "lands on /projects, not off-site, when redirectTo is %j",
    async (redirectTo) => {
      const email = freshEmail();
      await signUp(stack.app.url, email, PASSWORD);
      const response = await login(email, PASSWORD, redirectTo);
      expect(response.status).toBe(302);
      expect(response.headers.get("Location")).toBe("/projects");
      expect(sessionSetCookie(response)).toBeDefined();
    },
  );

  it("sends a signed-in visitor of /login on to a safe redirectTo only", async () => {
    const cookie = await signUp(stack.app.url, freshEmail(), PASSWORD);
    const evil = await get(`/login?redirectTo=${encodeURIComponent("//evil.example")}`, cookie);
    expect(evil.status).toBe(302);
    expect(evil.headers.get("Location")).toBe("/projects");
    const own = await get(`/login?redirectTo=${encodeURIComponent("/projects?x=1")}`, cookie);
    expect(own.headers.get("Location")).toBe("/projects?x=1");
  });

  it("answers a wrong password and an unknown email with the same 400 and no cookie", async () => {
    const email = freshEmail();
    await signUp(stack.app.url, email, PASSWORD);
    const wrong = await login(email, "wrong password");
    const unknown = await login(freshEmail(), PASSWORD);
    for (const response of [wrong, unknown]) {
      expect(response.status).toBe(400);
      expect(sessionSetCookie(response)).toBeUndefined();
      expect(await response.text()).toContain("Wrong email or password.");
    }
  });

  it("answers 429 from the sixth wrong attempt for an email, and then refuses the right password too", async () => {
    const email = freshEmail();
    const bystander = freshEmail();
    await signUp(stack.app.url, email, PASSWORD);
    await signUp(stack.app.url, bystander, PASSWORD);
    for (let i = 1; i <= 5; i++) {
      const response = await login(email, `wrong password ${i}`);
      expect(response.status, `attempt ${i}`).toBe(400);
      await response.body?.cancel();
    }
    const sixth = await login(email, "wrong password 6");
    expect(sixth.status).toBe(429);
    expect(await sixth.text()).toContain("Too many sign-in attempts.");

    const right = await login(email.toUpperCase(), PASSWORD);
    expect(right.status).toBe(429);
    expect(sessionSetCookie(right)).toBeUndefined();
    await right.body?.cancel();

    // Another account from the same address is not locked out.
    const other = await login(bystander, PASSWORD);
    expect(other.status).toBe(302);
    expect(sessionSetCookie(other)).toBeDefined();
  });
});

describe("sessions", () => {
  it("sends a visitor without a cookie to sign in, and back afterwards", async () => {
    const response = await get("/projects");
    expect(response.status).toBe(302);
    expect(response.headers.get("Location")).toBe("/login?redirectTo=%2Fprojects");
    const deep = await get("/projects?view=x");
    expect(deep.headers.get("Location")).toBe(`/login?redirectTo=${encodeURIComponent("/projects?view=x")}`);
  });

  it("ends the session on the server at POST /logout: the old cookie no longer opens anything", async () => {
    const email = freshEmail();
    const cookie = await signUp(stack.app.url, email, PASSWORD);
    expect(await opensProjects(cookie)).toBe(true);
    const [user] = await stack.database.db.select().from(users).where(eq(users.email, email));
    expect(await stack.database.db.select().from(sessions).where(eq(sessions.userId, user!.id))).toHaveLength(1);

    const response = await post("/logout", {}, { cookie });
    expect(response.status).toBe(302);
    expect(response.headers.get("Location")).toBe("/login");
    // The browser is told to drop the cookie…
    expect(sessionSetCookie(response)).toMatch(/Expires=Thu, 01 Jan 1970|Max-Age=0/i);
    // …and a copy kept anyway is worthless: the session row is gone.
    expect(await stack.database.db.select().from(sessions).where(eq(sessions.userId, user!.id))).toHaveLength(0);
    expect(await opensProjects(cookie)).toBe(false);
  });

  it("does not accept an expired session, and sweeps the builder's expired sessions at the next sign-in", async () => {
    const email = freshEmail();
    const cookie = await signUp(stack.app.url, email, PASSWORD);
    const [user] = await stack.database.db.select().from(users).where(eq(users.email, email));
    await stack.database.db
      .update(sessions)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(sessions.userId, user!.id));
    expect(await opensProjects(cookie)).toBe(false);

    const response = await login(email, PASSWORD);
    expect(response.status).toBe(302);
    const left = await stack.database.db.select().from(sessions).where(eq(sessions.userId, user!.id));
    expect(left).toHaveLength(1);
    expect(left[0]!.expiresAt.getTime()).toBeGreaterThan(Date.now());
    expect(await opensProjects(cookiePair(sessionSetCookie(response)!))).toBe(true);
  });

  it("does not sign out on GET /logout (a link or an image cannot sign anyone out)", async () => {
    const cookie = await signUp(stack.app.url, freshEmail(), PASSWORD);
    const response = await get("/logout", cookie);
    expect(response.status).toBe(302);
    expect(sessionSetCookie(response)).toBeUndefined();
    expect(await opensProjects(cookie)).toBe(true);
  });

  it("refuses a sign-out posted from another site", async () => {
    const cookie = await signUp(stack.app.url, freshEmail(), PASSWORD);
    const response = await post("/logout", {}, { cookie, origin: "http://evil.example" });
    expect(response.status).toBe(403);
    expect(await opensProjects(cookie)).toBe(true);
  });

  it("treats a tampered or foreign-signed cookie as signed out", async () => {
    const cookie = await signUp(stack.app.url, freshEmail(), PASSWORD);
    const [name, value] = [
      cookie.slice(0, cookie.indexOf("=")),
      decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1)),
    ];
    const dot = value.lastIndexOf(".");
    const [payload, signature] = [value.slice(0, dot), value.slice(dot + 1)];

    // Another session id in the payload, the old signature.
    const session = JSON.parse(Buffer.from(payload, "base64").toString("utf8")) as { sessionId: string };
    const otherId = randomUUID();
    const swapped = Buffer.from(JSON.stringify({ ...session, sessionId: otherId })).toString("base64");
    expect(await opensProjects(`${name}=${encodeURIComponent(`${swapped}.${signature}`)}`)).toBe(false);
    // A flipped signature character.
    const flipped = signature.slice(0, -2) + (signature.at(-2) === "A" ? "B" : "A") + signature.at(-1);
    expect(await opensProjects(`${name}=${encodeURIComponent(`${payload}.${flipped}`)}`)).toBe(false);
    // The payload alone, unsigned.
    expect(await opensProjects(`${name}=${encodeURIComponent(payload)}`)).toBe(false);
    // Garbage.
    expect(await opensProjects(`${name}=not-a-cookie`)).toBe(false);
    // The untouched cookie still works.
    expect(await opensProjects(cookie)).toBe(true);
  });

  it("ends every session of a deleted user", async () => {
    const email = freshEmail();
    const cookie = await signUp(stack.app.url, email, PASSWORD);
    expect(await opensProjects(cookie)).toBe(true);
    await stack.database.db.delete(users).where(eq(users.email, email));
    expect(await opensProjects(cookie)).toBe(false);
  });
});
