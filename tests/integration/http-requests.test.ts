/**
 * What every form action does with requests that are not its form, over
 * real HTTP against the app in a process of its own: wrong body types and
 * broken bodies get 400/415, other methods 405 with Allow, writes from
 * another origin (scheme, host or port) or marked cross-site / same-site by
 * fetch metadata 403; pages carry the security headers and a CSP nonce on
 * every inline script; sign-up is rate-limited per address.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import getPort from "get-port";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signUp } from "../support/accounts";
import { startAppProcess, type AppProcess } from "../support/app-process";
import { reserveTestDatabase, type ReservedDatabase } from "../support/database";

let reserved: ReservedDatabase;
let dataDir: string;
let app: AppProcess;
let previewPort: number;
let cookie: string;
let projectId: string;

const PASSWORD = "correct horse battery";

beforeAll(async () => {
  reserved = await reserveTestDatabase();
  dataDir = reserved.env.DYNO_DATA_DIR ?? mkdtempSync(path.join(os.tmpdir(), "dyno-http-requests-"));
  previewPort = await getPort();
  app = await startAppProcess({
    ...reserved.env,
    DYNO_DATA_DIR: dataDir,
    PORT: "0",
    PREVIEW_PORT: String(previewPort),
    INNGEST_DEV: "1",
    NO_PROXY: "127.0.0.1,localhost",
  });
  cookie = await signUp(app.url, `http-${randomUUID()}@example.test`, PASSWORD);
  projectId = (await createProject({}))!;
}, 120_000);

afterAll(async () => {
  await app?.kill();
  await reserved?.release();
  if (!reserved?.env.DYNO_DATA_DIR && dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Creates a project through the list's form with these extra headers; its id, or null when refused. */
async function createProject(headers: Record<string, string>): Promise<string | null> {
  const response = await fetch(`${app.url}/projects`, {
    method: "POST",
    body: new URLSearchParams({ intent: "create", title: "" }),
    headers: { Cookie: cookie, ...headers },
    redirect: "manual",
  });
  await response.text();
  if (response.status !== 302) return null;
  return /^\/projects\/([0-9a-f-]{36})$/.exec(response.headers.get("Location") ?? "")![1]!;
}

async function projectCount(): Promise<number> {
  const page = await (await fetch(`${app.url}/projects`, { headers: { Cookie: cookie } })).text();
  return page.match(/data-project-id=/g)?.length ?? 0;
}

/** Every route with an action, with a form it would accept. */
const actionRoutes = (): Array<{ path: string; fields: Record<string, string> }> => [
  { path: "/login", fields: { email: "someone@example.test", password: "wrong password" } },
  { path: "/signup", fields: { email: "someone@example.test", password: "short" } },
  { path: "/logout", fields: {} },
  { path: "/projects", fields: { intent: "create" } },
  { path: `/projects/${projectId}`, fields: { intent: "prompt", prompt: "hello" } },
];

const BROKEN_BODIES: Array<{
  name: string;
  headers: Record<string, string>;
  body: string;
  status: number;
  message: string;
}> = [
  {
    name: "JSON",
    headers: { "Content-Type": "application/json" },
    body: '{"email":"a@example.test"}',
    status: 415,
    message: "Send this form as",
  },
  {
    name: "text/plain",
    headers: { "Content-Type": "text/plain" },
    body: "email=a@example.test",
    status: 415,
    message: "Send this form as",
  },
  { name: "no content type", headers: {}, body: "email=a@example.test", status: 415, message: "Send this form as" },
  {
    name: "multipart without a boundary",
    headers: { "Content-Type": "multipart/form-data" },
    body: '--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na\r\n--x--\r\n',
    status: 400,
    message: "That form could not be read.",
  },
  {
    name: "multipart cut short",
    headers: { "Content-Type": "multipart/form-data; boundary=x" },
    body: '--x\r\nContent-Disposition: form-data; name="email"\r\n\r\nhalf a fie',
    status: 400,
    message: "That form could not be read.",
  },
];

/** The page (or text) carries the short message and nothing of a stack trace. */
async function expectShortRefusal(response: Response, message: string) {
  const text = await response.text();
  expect(text).toContain(message);
  expect(text).not.toMatch(/\bat [^\n]*\.[jt]sx?:\d+:\d+/);
}

describe("form actions and wrong requests", () => {
  for (const shape of BROKEN_BODIES) {
    it(`answers ${shape.name} with ${shape.status} and a short message on every action route`, async () => {
      for (const route of actionRoutes()) {
        const body = new Blob([shape.body]); // a Blob: fetch adds no Content-Type of its own
        const response = await fetch(`${app.url}${route.path}`, {
          method: "POST",
          body,
          headers: { Cookie: cookie, ...shape.headers },
          redirect: "manual",
        });
        expect(response.status, `${route.path}`).toBe(shape.status);
        await expectShortRefusal(response, shape.message);
      }
    });
  }

  it("answers DELETE, PUT and PATCH with 405 and an Allow header on every action route", async () => {
    for (const route of actionRoutes()) {
      for (const method of ["DELETE", "PUT", "PATCH"]) {
        const response = await fetch(`${app.url}${route.path}`, {
          method,
          body: new URLSearchParams(route.fields),
          headers: { Cookie: cookie },
          redirect: "manual",
        });
        expect(response.status, `${method} ${route.path}`).toBe(405);
        expect(response.headers.get("Allow"), `${method} ${route.path}`).toBe("GET, HEAD, POST");
        await expectShortRefusal(response, `${method} is not allowed here`);
      }
    }
  });

  it("still takes the forms themselves, URL-encoded and multipart", async () => {
    const encoded = await fetch(`${app.url}/login`, {
      method: "POST",
      body: new URLSearchParams(actionRoutes()[0]!.fields),
    });
    expect(encoded.status).toBe(400);
    expect(await encoded.text()).toContain("Wrong email or password.");
    const multipart = new FormData();
    multipart.set("email", "someone@example.test");
    multipart.set("password", "wrong password");
    const posted = await fetch(`${app.url}/login`, { method: "POST", body: multipart });
    expect(posted.status).toBe(400);
    expect(await posted.text()).toContain("Wrong email or password.");
  });
});

describe("cross-origin writes", () => {
  it("refuses another scheme, host or port in Origin, and cross-site or same-site fetch metadata without Origin", async () => {
    const own = new URL(app.url);
    const before = await projectCount();
    const refused: Array<Record<string, string>> = [
      { Origin: `https://${own.host}` },
      { Origin: `http://${own.hostname}:${previewPort}` },
      { Origin: `http://${"a".repeat(32)}-${"b".repeat(20)}.localhost:${previewPort}` },
      { Origin: `http://localhost:${own.port}` },
      { Origin: "null" },
      { "Sec-Fetch-Site": "cross-site" },
      { "Sec-Fetch-Site": "same-site" },
      { Origin: app.url, "Sec-Fetch-Site": "same-site" },
    ];
    for (const headers of refused) {
      const response = await fetch(`${app.url}/projects`, {
        method: "POST",
        body: new URLSearchParams({ intent: "create" }),
        headers: { Cookie: cookie, ...headers },
        redirect: "manual",
      });
      expect(response.status, JSON.stringify(headers)).toBe(403);
      expect(await response.text()).toBe("Cross-origin request refused");
    }
    expect(await projectCount()).toBe(before);

    // The app's own pages (a browser's form post), and clients that are not browsers (no Origin, no metadata), still write.
    expect(await createProject({ Origin: app.url, "Sec-Fetch-Site": "same-origin" })).not.toBeNull();
    expect(await createProject({ Origin: app.url })).not.toBeNull();
    expect(await createProject({ "Sec-Fetch-Site": "none" })).not.toBeNull();
    expect(await createProject({})).not.toBeNull();
    expect(await projectCount()).toBe(before + 4);
  });
});

describe("security headers", () => {
  it("sends a CSP whose nonce is on every inline script, framing refused, nosniff and the referrer policy; no HSTS in development", async () => {
    for (const pathname of ["/login", `/projects/${projectId}`]) {
      const response = await fetch(`${app.url}${pathname}`, { headers: { Cookie: cookie } });
      expect(response.status).toBe(200);
      const csp = response.headers.get("Content-Security-Policy") ?? "";
      const directives = new Map(
        csp
          .split(";")
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name!, values]),
      );
      const nonce = /'nonce-([^']+)'/.exec(directives.get("script-src")?.join(" ") ?? "")?.[1];
      expect(nonce, csp).toBeTruthy();
      expect(directives.get("script-src")).not.toContain("'unsafe-inline'");
      expect(directives.get("frame-ancestors")).toEqual(["'none'"]);
      // Every project's preview origin, and no other: http://<label>.localhost:<preview port>.
      expect(directives.get("frame-src")).toContain(`http://*.localhost:${previewPort}`);
      expect(directives.get("object-src")).toEqual(["'none'"]);
      expect(response.headers.get("X-Frame-Options")).toBe("DENY");
      expect(response.headers.get("X-Content-Type-Options")).toBe("nosniff");
      expect(response.headers.get("Referrer-Policy")).toBe("same-origin");
      expect(response.headers.get("Strict-Transport-Security")).toBeNull();

      const page = await response.text();
      const scripts = [...page.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
      expect(scripts.length).toBeGreaterThan(0);
      for (const tag of scripts) expect(tag, pathname).toContain(`nonce="${nonce}"`);
      // A fresh nonce for each response.
      const again = await fetch(`${app.url}${pathname}`, { headers: { Cookie: cookie } });
      await again.text();
      expect(again.headers.get("Content-Security-Policy")).not.toContain(nonce);
    }
  });
});

describe("sign-up rate limit", () => {
  // Last in this file: it spends this address's sign-up budget.
  it("answers 429 once an address has spent its sign-up attempts, with the right password too", async () => {
    let attempts = 0;
    let last: Response | undefined;
    for (; attempts < 60; attempts++) {
      last = await fetch(`${app.url}/signup`, {
        method: "POST",
        body: new URLSearchParams({ email: `limit-${randomUUID()}@example.test`, password: PASSWORD }),
        redirect: "manual",
      });
      if (last.status === 429) break;
      expect(last.status).toBe(302);
      await last.text();
    }
    expect(last!.status).toBe(429);
    expect(attempts).toBeLessThanOrEqual(50);
    expect(await last!.text()).toContain("Too many sign-up attempts.");
    const signIn = await fetch(`${app.url}/login`, {
      method: "POST",
      body: new URLSearchParams({ email: "nobody@example.test", password: PASSWORD }),
    });
    // Sign-in has a budget of its own.
    expect(signIn.status).toBe(400);
  }, 120_000);
});
