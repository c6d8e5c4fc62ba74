/**
 * The preview in front of a running app: a real node HTTP + WebSocket server listening on a unix socket, as the app
 * process's dev server does, reached through an AppProcess object whose state the tests set.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { previewLabel } from "../app/preview-token.server";
import { raw, TestApp } from "../tests/support/preview-request";
import { startPreviewServer, type PreviewServer } from "./preview";
import { REPORT_BURST, REPORT_SCRIPT_TAG, ReportRateLimit, REPORTS_PER_MINUTE } from "./preview/report";

const SECRET = "preview-proxy-secret-0123456789abcdef";
const BUILDER = "localhost:3000 127.0.0.1:3000";
const PAGE = "<!doctype html><html><head><title>App</title></head><body>running app</body></html>";
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** One WebSocket text frame; a client's frames are masked (RFC 6455 5.3). */
function frame(text: string, mask: boolean): Buffer {
  const payload = Buffer.from(text);
  const key = mask ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0);
  const body = mask ? payload.map((b, i) => b ^ key[i % 4]!) : payload;
  return Buffer.concat([Buffer.from([0x81, (mask ? 0x80 : 0) | payload.length]), key, body]);
}

/** The text of the first (short) frame in data, or null while incomplete. */
function readFrame(data: Buffer): string | null {
  if (data.length < 2) return null;
  const masked = (data[1]! & 0x80) !== 0;
  const length = data[1]! & 0x7f;
  const start = 2 + (masked ? 4 : 0);
  if (data.length < start + length) return null;
  const body = data.subarray(start, start + length);
  if (masked) for (let i = 0; i < body.length; i++) body[i]! ^= data[2 + (i % 4)]!;
  return body.toString();
}

describe("preview server in front of a running app", () => {
  const projectId = randomUUID();
  let dir: string;
  let appServer: Server;
  let preview: PreviewServer;
  let host: string;
  const app = new TestApp();
  const seen: IncomingMessage[] = [];
  let upgradeHeaders: IncomingMessage["headers"] | undefined;
  let releaseStream: (() => void) | undefined;
  /** Upgraded sockets leave the server's tracking: closeAllConnections would not end them. */
  const upgraded = new Set<Duplex>();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "dyno-preview-proxy-"));
    mkdirSync(path.join(dir, "workspace"));
    writeFileSync(path.join(dir, "workspace", "index.html"), "<p>static files</p>");
    app.socketPath = path.join(dir, "app.sock");
    appServer = createServer((req, res) => {
      seen.push(req);
      const url = req.url ?? "/";
      if (url === "/") {
        const gzip = /gzip/.test(req.headers["accept-encoding"] ?? "");
        const body = gzip ? gzipSync(PAGE) : Buffer.from(PAGE);
        res.writeHead(200, {
          "Content-Type": "text/html",
          "Content-Length": String(body.length),
          ...(gzip ? { "Content-Encoding": "gzip" } : {}),
          "Content-Security-Policy": "default-src 'self'",
          "Set-Cookie": ["session=abc; Domain=localhost; Path=/; HttpOnly", "theme=dark;domain=.localhost"],
          Connection: "X-Private",
          "X-Private": "hop",
          "Keep-Alive": "timeout=5",
        });
        return void res.end(body);
      }
      if (url === "/headers") {
        res.writeHead(200, { "Content-Type": "application/json" });
        return void res.end(JSON.stringify(req.headers));
      }
      if (url === "/upload") {
        let bytes = 0;
        req.on("data", (chunk: Buffer) => (bytes += chunk.length));
        req.on("end", () => res.writeHead(201, { "Content-Type": "text/plain" }).end(`got ${bytes} bytes`));
        return;
      }
      if (url === "/stream") {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        res.write("data: first\n\n");
        releaseStream = () => res.end("data: second\n\n");
        return;
      }
      res.writeHead(404, { "Content-Type": "text/plain" }).end("app 404");
    });
    appServer.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
      upgraded.add(socket);
      upgradeHeaders = req.headers;
      const accept = createHash("sha1").update(`${req.headers["sec-websocket-key"]}${WS_GUID}`).digest("base64");
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: vite-hmr\r\n\r\n`,
      );
      // As WebSocket servers do: the peer's end closes the connection (an upgraded socket is half-open otherwise).
      socket.on("end", () => socket.end());
      let buffered = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const text = readFrame(Buffer.from(buffered));
        if (text !== null) {
          buffered = Buffer.alloc(0);
          socket.write(frame(`echo: ${text}`, false));
        }
      });
    });
    await new Promise<void>((resolve) => appServer.listen(app.socketPath, resolve));
    preview = await startPreviewServer({
      port: 0,
      secret: SECRET,
      frameAncestors: () => BUILDER,
      resolveDirectory: async (id) => (id === projectId ? path.join(dir, "workspace") : null),
      app: async (id) => (id === projectId ? app : null),
    });
    host = `${previewLabel(SECRET, projectId)}.localhost:${preview.port}`;
  });

  beforeEach(() => {
    app.state = "running";
    app.command = "npm run dev";
    app.reason = null;
    app.lines = [];
    seen.length = 0;
  });

  afterAll(async () => {
    await preview?.close();
    for (const socket of upgraded) socket.destroy();
    await new Promise<void>((resolve) => {
      appServer?.close(() => resolve());
      appServer?.closeAllConnections();
    });
    rmSync(dir, { recursive: true, force: true });
  });

  const navigation = { "Sec-Fetch-Dest": "iframe", Accept: "text/html", "Accept-Encoding": "gzip, br" };

  it("proxies a page load: identity asked for, the reporter injected, Content-Length fixed, Host rewritten", async () => {
    const touches = app.touches;
    const res = await raw(preview, host, "/", "GET", navigation);
    expect(res.status).toBe(200);
    const html = res.body.toString();
    expect(html).toBe(PAGE.replace("<head>", `<head>${REPORT_SCRIPT_TAG}`));
    expect(res.headers["content-length"]).toBe(String(res.body.length));
    expect(res.headers["content-encoding"]).toBeUndefined();
    expect(seen[0]!.headers.host).toBe(`localhost:${TestApp.PORT}`);
    expect(seen[0]!.headers["accept-encoding"]).toBe("identity");
    expect(seen[0]!.headers["x-forwarded-host"]).toBe(host);
    expect(app.touches).toBeGreaterThan(touches);
  });

  it("keeps the preview's guarantees on the app's answers: frame-ancestors, nosniff, no referrer, host-only cookies", async () => {
    const res = await raw(preview, host, "/", "GET", navigation);
    const csp = res.headers["content-security-policy"];
    // Node joins repeated headers with ", ": both policies reach the browser, each enforced.
    expect(csp).toBe(`default-src 'self', frame-ancestors ${BUILDER}`);
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.headers["set-cookie"]).toEqual(["session=abc; Path=/; HttpOnly", "theme=dark"]);
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
    // Hop-by-hop headers, and the one the app's Connection named, stay on the app's side.
    expect(res.headers["x-private"]).toBeUndefined();
    expect(res.headers["keep-alive"]).toBeUndefined();
  });

  it("passes other requests through untouched: compressed bytes stay compressed, no injection", async () => {
    const res = await raw(preview, host, "/", "GET", { "Sec-Fetch-Dest": "empty", "Accept-Encoding": "gzip" });
    expect(res.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(res.body).toString()).toBe(PAGE);
    expect(res.headers["content-security-policy"]).toContain(`frame-ancestors ${BUILDER}`);
  });

  it("forwards what the app needs and drops hop-by-hop request headers", async () => {
    const res = await raw(preview, host, "/headers", "GET", {
      Origin: `http://${host}`,
      Cookie: "session=abc",
      Connection: "X-Hop",
      "X-Hop": "secret",
      "X-Forwarded-For": "1.2.3.4",
    });
    const headers = JSON.parse(res.body.toString()) as Record<string, string>;
    expect(headers.host).toBe(`localhost:${TestApp.PORT}`);
    // Same-origin to the preview is same-origin to the app, in its own terms.
    expect(headers.origin).toBe(`http://localhost:${TestApp.PORT}`);
    expect(headers.cookie).toBe("session=abc");
    expect(headers["x-hop"]).toBeUndefined();
    expect(headers["x-forwarded-for"]).toBeUndefined();
    expect(headers["x-forwarded-proto"]).toBe("http");
    const foreign = await raw(preview, host, "/headers", "GET", { Origin: "http://evil.example" });
    expect((JSON.parse(foreign.body.toString()) as Record<string, string>).origin).toBe("http://evil.example");
  });

  it("streams a request body in and any method through, and the app's own statuses back", async () => {
    const body = Buffer.alloc(300_000, 7);
    const res = await raw(preview, host, "/upload", "POST", { "Content-Type": "application/octet-stream" }, body);
    expect(res.status).toBe(201);
    expect(res.body.toString()).toBe(`got ${body.length} bytes`);
    const missing = await raw(preview, host, "/nothing-here");
    expect(missing.status).toBe(404);
    expect(missing.body.toString()).toBe("app 404");
  });

  it("streams a response as the app writes it (an event stream's first event arrives before the app ends)", async () => {
    releaseStream = undefined;
    const events: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: preview.port, path: "/stream", headers: { Host: host }, agent: false },
        (res) => {
          res.on("data", (chunk: Buffer) => {
            events.push(chunk.toString());
            // The app holds the second event until the first one has come through the preview.
            if (events.length === 1) releaseStream!();
          });
          res.on("end", resolve);
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(events.join("")).toBe("data: first\n\ndata: second\n\n");
    expect(events[0]).toBe("data: first\n\n");
  });

  it("proxies a WebSocket upgrade (HMR) both ways, with Host and a same-origin Origin in the app's terms", async () => {
    const key = Buffer.from(randomUUID()).toString("base64");
    const { socket, response } = await new Promise<{ socket: Socket; response: IncomingMessage }>((resolve, reject) => {
      const req = request({
        host: "127.0.0.1",
        port: preview.port,
        path: "/?token=hmr",
        agent: false,
        headers: {
          Host: host,
          Origin: `http://${host}`,
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": key,
          "Sec-WebSocket-Protocol": "vite-hmr",
        },
      });
      req.on("upgrade", (res, socket) => resolve({ socket, response: res }));
      req.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.on("error", reject);
      req.end();
    });
    try {
      expect(response.statusCode).toBe(101);
      expect(response.headers["sec-websocket-accept"]).toBe(
        createHash("sha1").update(`${key}${WS_GUID}`).digest("base64"),
      );
      expect(upgradeHeaders!.host).toBe(`localhost:${TestApp.PORT}`);
      expect(upgradeHeaders!.origin).toBe(`http://localhost:${TestApp.PORT}`);
      expect(upgradeHeaders!.upgrade).toBe("websocket");
      const reply = await new Promise<string>((resolve) => {
        let data = Buffer.alloc(0);
        socket.on("data", (chunk: Buffer) => {
          data = Buffer.concat([data, chunk]);
          const text = readFrame(data);
          if (text !== null) resolve(text);
        });
        socket.write(frame("hello", true));
      });
      expect(reply).toBe("echo: hello");
      // The browser leaving (a reload) ends the app's side too: no socket left behind per visit.
      const appSide = [...upgraded].at(-1)!;
      const appSideClosed = new Promise((resolve) => appSide.once("close", resolve));
      socket.destroy();
      await appSideClosed;
    } finally {
      socket.destroy();
    }
  });

  it("refuses an upgrade for another host, and while the app is not running", async () => {
    const attempt = (hostHeader: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({
          host: "127.0.0.1",
          port: preview.port,
          path: "/",
          agent: false,
          headers: { Host: hostHeader, Connection: "Upgrade", Upgrade: "websocket" },
        });
        req.on("upgrade", (_res, socket) => {
          socket.destroy();
          resolve(101);
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    expect(await attempt(`localhost:${preview.port}`)).toBe(404);
    app.state = "starting";
    expect(await attempt(host)).toBe(503);
  });

  it("shows a page that refreshes itself while the app starts; 503 with Retry-After for everything else", async () => {
    app.state = "starting";
    const page = await raw(preview, host, "/", "GET", navigation);
    expect(page.status).toBe(503);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["retry-after"]).toBe("2");
    expect(page.headers["content-security-policy"]).toBe(`frame-ancestors ${BUILDER}`);
    const html = page.body.toString();
    expect(html).toContain("Starting your app…");
    expect(html).toContain('<meta http-equiv="refresh"');
    expect(html).toContain("<code>npm run dev</code>");
    const script = await raw(preview, host, "/src/main.ts", "GET", { "Sec-Fetch-Dest": "script" });
    expect(script.status).toBe(503);
    expect(script.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(script.headers["retry-after"]).toBe("2");
  });

  it("starts a stopped app that has a command (idle-stopped), without waiting for it", async () => {
    app.state = "stopped";
    app.reason = "idle for 15 min";
    const starts = app.starts;
    const page = await raw(preview, host, "/", "GET", navigation);
    expect(page.status).toBe(503);
    expect(page.body.toString()).toContain("Starting your app…");
    expect(app.starts).toBe(starts + 1);
  });

  it("does not start an app nobody has started yet: the agent may still be installing its packages", async () => {
    app.state = "stopped";
    app.reason = null;
    app.startedAt = null;
    const starts = app.starts;
    try {
      const page = await raw(preview, host, "/", "GET", navigation);
      expect(page.status).toBe(503);
      expect(page.body.toString()).toContain("Your app is not running yet");
      expect(app.starts).toBe(starts);
      const plain = await raw(preview, host, "/src/main.ts", "GET", { "Sec-Fetch-Dest": "script" });
      expect(plain.body.toString()).toBe("The app has not been started yet.");
    } finally {
      app.startedAt = new Date(0).toISOString();
    }
  });

  it("names a crash's reason and the last log lines, escaped, and who can restart it", async () => {
    app.state = "crashed";
    app.reason = "exited with code 1";
    app.lines = Array.from({ length: 30 }, (_, i) => ({
      seq: i,
      at: new Date(0).toISOString(),
      stream: "stderr" as const,
      text: i === 29 ? "<script>alert('x')</script> & more" : `line ${i}`,
    }));
    const page = await raw(preview, host, "/", "GET", navigation);
    expect(page.status).toBe(502);
    const html = page.body.toString();
    expect(html).toContain("Your app crashed: exited with code 1");
    expect(html).toContain("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more");
    expect(html).not.toContain("<script>alert");
    expect(html).toContain("line 10");
    expect(html).not.toContain("line 9\n");
    expect(html).toMatch(/agent|restart/i);
    const plain = await raw(preview, host, "/api", "GET", { Accept: "application/json" });
    expect(plain.status).toBe(502);
    expect(plain.body.toString()).toBe("The app crashed: exited with code 1");
  });

  it("serves the workspace's files when there is no app to run", async () => {
    app.state = "stopped";
    app.command = null;
    const starts = app.starts;
    const res = await raw(preview, host, "/", "GET", navigation);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(`${REPORT_SCRIPT_TAG}<p>static files</p>`);
    expect(app.starts).toBe(starts);
  });

  it("says the app is not answering when its socket is gone", async () => {
    const real = app.socketPath;
    app.socketPath = path.join(dir, "gone.sock");
    try {
      const res = await raw(preview, host, "/", "GET", navigation);
      expect(res.status).toBe(502);
      expect(res.body.toString()).toContain("not answering");
    } finally {
      app.socketPath = real;
    }
  });
});

describe("browser error reports", () => {
  const projectId = randomUUID();
  const app = new TestApp();
  let preview: PreviewServer;
  let host: string;
  let origin: string;

  beforeAll(async () => {
    preview = await startPreviewServer({
      port: 0,
      secret: SECRET,
      resolveDirectory: async () => null,
      app: async (id) => (id === projectId ? app : null),
    });
    host = `${previewLabel(SECRET, projectId)}.localhost:${preview.port}`;
    origin = `http://${host}`;
  });

  afterAll(async () => {
    await preview?.close();
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    raw(
      preview,
      host,
      "/__dyno/errors",
      "POST",
      { "Content-Type": "application/json", Origin: origin, ...headers },
      typeof body === "string" ? body : JSON.stringify(body),
    );

  it("adds a same-origin report to the app's log as a browser line", async () => {
    app.logged = [];
    const res = await post({
      kind: "error",
      message: "Uncaught TypeError: x is undefined",
      source: `${origin}/src/main.ts`,
      line: 3,
      column: 7,
      page: "/",
      stack: "TypeError: x is undefined\n    at main.ts:3:7\u001b[31m",
    });
    expect(res.status).toBe(204);
    expect(app.logged).toEqual([
      {
        stream: "browser",
        text: `Uncaught error: Uncaught TypeError: x is undefined (${origin}/src/main.ts:3:7) on /\n    at main.ts:3:7[31m`,
      },
    ]);
    expect((await post({ kind: "load", message: "Failed to load module /src/missing.ts", page: "/" })).status).toBe(
      204,
    );
    expect(app.logged[1]!.text).toBe("Failed to load module /src/missing.ts on /");
  });

  it("refuses reports from another origin, of another type, malformed, or too large", async () => {
    app.logged = [];
    expect((await post({ kind: "error", message: "x" }, { Origin: "http://evil.example" })).status).toBe(403);
    expect((await post({ kind: "error", message: "x" }, { "Content-Type": "text/plain" })).status).toBe(415);
    expect((await post("{not json")).status).toBe(400);
    expect((await post({ kind: "rm -rf", message: "x" })).status).toBe(400);
    expect((await post({ kind: "error", message: "" })).status).toBe(400);
    expect((await post({ kind: "error", message: "x".repeat(9000) })).status).toBe(413);
    expect((await raw(preview, host, "/__dyno/errors")).status).toBe(405);
    expect(app.logged).toEqual([]);
  });

  it("cuts a long report and stops a flood: a burst, then 429", async () => {
    app.logged = [];
    const other = randomUUID();
    // A clock that stands still: no report is refilled however slow this machine is.
    const flood = await startPreviewServer({
      port: 0,
      secret: SECRET,
      resolveDirectory: async () => null,
      app: async (id) => (id === other ? app : null),
      reportLimit: new ReportRateLimit(REPORT_BURST, REPORTS_PER_MINUTE, () => 0),
    });
    try {
      const floodHost = `${previewLabel(SECRET, other)}.localhost:${flood.port}`;
      const statuses: number[] = [];
      for (let i = 0; i < REPORT_BURST + 3; i++) {
        const res = await raw(
          flood,
          floodHost,
          "/__dyno/errors",
          "POST",
          { "Content-Type": "application/json", Origin: `http://${floodHost}` },
          JSON.stringify({ kind: "unhandledrejection", message: "boom", stack: "s".repeat(7000) }),
        );
        statuses.push(res.status);
      }
      expect(statuses.slice(0, REPORT_BURST)).toEqual(Array(REPORT_BURST).fill(204));
      expect(statuses.slice(REPORT_BURST)).toEqual([429, 429, 429]);
      expect(app.logged).toHaveLength(REPORT_BURST);
      expect(app.logged[0]!.text.length).toBeLessThanOrEqual(2001);
    } finally {
      await flood.close();
    }
  });
});

describe("the report rate limit", () => {
  it("gives each project a burst, refills at the per-minute rate, and keeps projects apart", () => {
    let now = 0;
    const limit = new ReportRateLimit(3, 30, () => now);
    expect([limit.take("a"), limit.take("a"), limit.take("a"), limit.take("a")]).toEqual([true, true, true, false]);
    expect(limit.take("b")).toBe(true);
    now += 1_000; // 30 a minute: one every 2 s
    expect(limit.take("a")).toBe(false);
    now += 1_000;
    expect([limit.take("a"), limit.take("a")]).toEqual([true, false]);
    now += 600_000; // never more than the burst saved up
    expect([limit.take("a"), limit.take("a"), limit.take("a"), limit.take("a")]).toEqual([true, true, true, false]);
  });

  it("forgets the least recently seen project past its bound", () => {
    const limit = new ReportRateLimit(1, 1, () => 0, 2);
    expect(limit.take("a")).toBe(true);
    expect(limit.take("b")).toBe(true);
    expect(limit.take("c")).toBe(true); // "a" forgotten
    expect(limit.take("c")).toBe(false);
    expect(limit.take("a")).toBe(true);
  });
});
