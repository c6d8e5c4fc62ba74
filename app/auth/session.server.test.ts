import { createCookieSessionStorage } from "@remix-run/node";
import { describe, expect, it } from "vitest";
import { parseEnv } from "../env.server";
import { safeRedirect, sessionCookieOptions } from "./session.server";

const SECRET = "session-test-secret-0123456789abcdef";

/** The Set-Cookie header the app's storage would send for a session made with these options. */
async function setCookieFor(options: ReturnType<typeof sessionCookieOptions>): Promise<string> {
  const storage = createCookieSessionStorage<{ sessionId: string }>({ cookie: options });
  const session = await storage.getSession();
  session.set("sessionId", "00000000-0000-4000-8000-000000000000");
  return storage.commitSession(session);
}

describe("safeRedirect", () => {
  it("keeps a path on this site, query and all", () => {
    expect(safeRedirect("/projects/abc?x=1")).toBe("/projects/abc?x=1");
    expect(safeRedirect("/projects")).toBe("/projects");
    expect(safeRedirect("/projects/abc#files")).toBe("/projects/abc#files");
    expect(safeRedirect("/")).toBe("/");
  });

  it.each([
    ["a protocol-relative URL", "//evil.example"],
    ["an absolute URL", "https://evil.example"],
    ["an absolute http URL", "http://evil.example/projects"],
    ["a backslash a browser reads as a slash", "/\\evil"],
    ["backslashes only", "\\\\evil.example"],
    ["a tab a browser drops, leaving //", "/\t/evil.example"],
    ["a newline a browser drops, leaving //", "/\n/evil.example"],
    ["a carriage return", "/\r/evil.example"],
    ["a relative path", "projects"],
    ["a javascript: URL", "javascript:alert(1)"],
    ["an empty string", ""],
  ])("refuses %s", (_what, to) => {
    expect(safeRedirect(to)).toBe("/projects");
  });

  it("refuses anything that is not a string, and uses the given fallback", () => {
    expect(safeRedirect(null)).toBe("/projects");
    expect(safeRedirect(undefined)).toBe("/projects");
    expect(safeRedirect(new File(["/projects"], "x.txt"))).toBe("/projects");
    expect(safeRedirect("//evil.example", "/")).toBe("/");
  });

  it("keeps what a browser resolves on this site even when it looks odd", () => {
    // "/.//x" is the path //x on the same origin, not the host x: the original string is kept as is.
    expect(safeRedirect("/.//evil.example")).toBe("/.//evil.example");
    expect(safeRedirect("/%2F%2Fevil.example")).toBe("/%2F%2Fevil.example");
  });
});

describe("the session cookie", () => {
  it("is HttpOnly, SameSite=Lax, on every path, for 30 days, and not Secure in development", async () => {
    const header = await setCookieFor(sessionCookieOptions(parseEnv({}), SECRET));
    expect(header).toMatch(/^__dyno_session=/);
    expect(header).toMatch(/; HttpOnly/);
    expect(header).toMatch(/; SameSite=Lax/);
    expect(header).toMatch(/; Path=\//);
    expect(header).toMatch(/; Max-Age=2592000/);
    expect(header).not.toMatch(/; Secure/i);
  });

  it("is Secure in production", async () => {
    const production = parseEnv({
      NODE_ENV: "production",
      SESSION_SECRET: SECRET,
      INNGEST_EVENT_KEY: "event-key",
      INNGEST_SIGNING_KEY: "signkey-prod-00",
    });
    const options = sessionCookieOptions(production, SECRET);
    expect(options.secure).toBe(true);
    const header = await setCookieFor(options);
    expect(header).toMatch(/; Secure/);
    expect(header).toMatch(/; HttpOnly/);
    expect(header).toMatch(/; SameSite=Lax/);
  });

  it("is signed with the secret: another secret cannot read it", async () => {
    const header = await setCookieFor(sessionCookieOptions(parseEnv({}), SECRET));
    const pair = header.split(";")[0]!;
    const own = createCookieSessionStorage<{ sessionId: string }>({
      cookie: sessionCookieOptions(parseEnv({}), SECRET),
    });
    const other = createCookieSessionStorage<{ sessionId: string }>({
      cookie: sessionCookieOptions(parseEnv({}), `${SECRET}x`),
    });
    expect((await own.getSession(pair)).get("sessionId")).toBe("00000000-0000-4000-8000-000000000000");
    expect((await other.getSession(pair)).get("sessionId")).toBeUndefined();
  });
});
