/**
 * The preview in front of a running app process: HTTP (streamed both ways) and WebSocket upgrades (a dev server's
 * hot module reload) to the app's unix socket. The app sees itself as `localhost:<its port>`: dev servers refuse
 * other Host names (their DNS-rebinding check; Vite allows localhost). Whatever the app answers keeps the preview's
 * guarantees: only the builder frames it (frame-ancestors added, combined with any policy of the app's own), no
 * sniffing, no referrer, and cookies stay host-only so no two projects share them.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { SAFETY_HEADERS } from "./http";
import { injectReportBytes } from "./report";

/** HTML pages up to this size are held to inject the reporter; a larger one streams through as it is. */
export const MAX_PROXIED_HTML_BYTES = 4 * 1024 * 1024;

/** Headers of one hop only (RFC 9110 7.6.1), never forwarded; plus whatever the Connection header names. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

export interface ProxyTarget {
  /** The app's unix socket. */
  socketPath: string;
  /** The port it listens on inside the sandbox (its Host), or null when unknown: 80. */
  port: number | null;
}

export interface ProxyOptions {
  /** The builder's origin(s) for frame-ancestors, or undefined for none. */
  frameAncestors?: string;
  /** "http" or "https": the scheme the browser used, for X-Forwarded-Proto. */
  scheme: string;
  /** Hold an HTML answer to put the reporter in its <head> (page loads only). */
  injectReport: boolean;
  /** The app did not answer (its socket is gone or refused): show a page instead. */
  unreachable(): void;
}

function appHost(target: ProxyTarget): string {
  return `localhost:${target.port ?? 80}`;
}

function connectionNamed(headers: IncomingHttpHeaders): Set<string> {
  const named = new Set<string>();
  const value = headers.connection;
  for (const token of (Array.isArray(value) ? value.join(",") : (value ?? "")).split(",")) {
    const name = token.trim().toLowerCase();
    if (name) named.add(name);
  }
  return named;
}

/** The request headers the app gets: hop-by-hop ones dropped, Host (and a same-origin Origin) as the app's own. */
function forwardedRequestHeaders(
  req: IncomingMessage,
  target: ProxyTarget,
  scheme: string,
  keep: ReadonlySet<string> = new Set(),
): Record<string, string | string[]> {
  const named = connectionNamed(req.headers);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if ((HOP_BY_HOP.has(name) || named.has(name)) && !keep.has(name)) continue;
    if (name === "host" || name.startsWith("x-forwarded-")) continue;
    out[name] = value;
  }
  const host = req.headers.host ?? "";
  out.host = appHost(target);
  // A request from the preview's own pages is same-origin to the app too: say so in the app's terms, or its CSRF and
  // WebSocket origin checks would refuse its own pages.
  if (
    typeof req.headers.origin === "string" &&
    req.headers.origin.toLowerCase() === `${scheme}://${host.toLowerCase()}`
  ) {
    out.origin = `http://${appHost(target)}`;
  }
  out["x-forwarded-host"] = host;
  out["x-forwarded-proto"] = scheme;
  return out;
}

/** `Domain=…` removed: a cookie the app sets stays on its own host, never shared with other projects' origins. */
export function hostOnlyCookie(setCookie: string): string {
  return setCookie
    .split(";")
    .filter((part, i) => i === 0 || !/^\s*domain\s*=/i.test(part))
    .join(";");
}

/** The app's response headers as the browser gets them. */
export function previewResponseHeaders(
  headers: IncomingHttpHeaders,
  frameAncestors: string | undefined,
): Record<string, string | string[]> {
  const named = connectionNamed(headers);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  if (out["set-cookie"]) out["set-cookie"] = (out["set-cookie"] as string[]).map(hostOnlyCookie);
  if (frameAncestors) {
    // A second policy is enforced alongside the app's (each must allow): the builder alone may frame, whatever the
    // app's own says, and the app's other directives still hold.
    const own = out["content-security-policy"];
    const policies = own === undefined ? [] : Array.isArray(own) ? own : [own];
    out["content-security-policy"] = [...policies, `frame-ancestors ${frameAncestors}`];
  }
  Object.assign(out, SAFETY_HEADERS);
  return out;
}

/** One HTTP request to the app, streamed both ways. Resolves when the exchange ends. */
export function proxyHttp(
  req: IncomingMessage,
  res: ServerResponse,
  target: ProxyTarget,
  options: ProxyOptions,
): Promise<void> {
  return new Promise((resolve) => {
    const headers = forwardedRequestHeaders(req, target, options.scheme);
    if (options.injectReport) headers["accept-encoding"] = "identity";
    const upstream = request({ socketPath: target.socketPath, method: req.method, path: req.url, headers });
    let answered = false;
    upstream.once("response", (answer) => {
      answered = true;
      const outHeaders = previewResponseHeaders(answer.headers, options.frameAncestors);
      const status = answer.statusCode ?? 502;
      res.once("close", () => answer.destroy());
      answer.once("end", resolve);
      answer.once("error", () => {
        res.destroy();
        resolve();
      });
      if (options.injectReport && req.method === "GET" && injectable(answer, status)) {
        holdAndInject(answer, res, status, outHeaders);
        return;
      }
      res.writeHead(status, answer.statusMessage, outHeaders);
      res.flushHeaders();
      answer.pipe(res);
    });
    upstream.once("error", () => {
      if (!answered && !res.headersSent) options.unreachable();
      else res.destroy();
      resolve();
    });
    res.once("close", () => {
      if (!res.writableFinished) upstream.destroy();
      resolve();
    });
    req.pipe(upstream);
  });
}

function injectable(answer: IncomingMessage, status: number): boolean {
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return false;
  if (!/^text\/html\b/i.test(answer.headers["content-type"] ?? "")) return false;
  const encoding = answer.headers["content-encoding"];
  if (encoding && encoding.toLowerCase() !== "identity") return false;
  const length = answer.headers["content-length"];
  return length === undefined || Number(length) <= MAX_PROXIED_HTML_BYTES;
}

/** Holds the page (bounded) to inject the reporter; past the bound, sends what it held and streams the rest as is. */
function holdAndInject(
  answer: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: Record<string, string | string[]>,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    chunks.push(chunk);
    if (size <= MAX_PROXIED_HTML_BYTES) return;
    answer.off("data", onData);
    answer.off("end", onEnd);
    delete headers["content-length"];
    res.writeHead(status, headers);
    res.write(Buffer.concat(chunks));
    answer.pipe(res);
  };
  const onEnd = () => {
    const body = injectReportBytes(Buffer.concat(chunks));
    res.writeHead(status, { ...headers, "content-length": String(body.length) });
    res.end(body);
  };
  answer.on("data", onData);
  answer.once("end", onEnd);
}

/**
 * A WebSocket upgrade (HMR): the request head, rewritten as for HTTP, written to the app's socket, then both
 * sockets piped; the app's own handshake answer goes back untouched.
 */
export function proxyUpgrade(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  target: ProxyTarget,
  scheme: string,
  unreachable: () => void,
): void {
  const headers = forwardedRequestHeaders(req, target, scheme, new Set(["connection", "upgrade"]));
  const upstream: Socket = connect(target.socketPath);
  let connected = false;
  upstream.once("connect", () => {
    connected = true;
    const lines = [`${req.method ?? "GET"} ${req.url ?? "/"} HTTP/1.1`];
    for (const [name, value] of Object.entries(headers)) {
      for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
    }
    upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.once("error", () => {
    if (!connected) unreachable();
    else client.destroy();
  });
  upstream.once("close", () => client.destroy());
  client.once("error", () => upstream.destroy());
  client.once("close", () => upstream.destroy());
}
