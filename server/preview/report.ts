/**
 * Errors the running page throws in the browser reach the agent: every HTML page the preview serves starts with
 * `<script src="/__dyno/report.js">`, which posts uncaught errors, failed script and module loads, unhandled
 * rejections and Vite's HMR errors to `POST /__dyno/errors` on the same origin; the server adds them to the app's
 * log as "browser" lines (AppProcess.appendLog), which the agent reads as its next thought.
 *
 * Bounded everywhere: the script sends at most MAX_REPORTS_PER_PAGE per page load, the endpoint takes JSON of at most
 * MAX_REPORT_BYTES, a report's text is cut to MAX_LINE_CHARS, and each project may report REPORT_BURST at once and
 * REPORTS_PER_MINUTE after that. What the page reports is the page's word (the page is agent-written code): the
 * agent side must treat it as data, not instructions.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { text } from "./http";

export const REPORT_SCRIPT_PATH = "/__dyno/report.js";
export const REPORT_ERRORS_PATH = "/__dyno/errors";
export const REPORT_SCRIPT_TAG = `<script src="${REPORT_SCRIPT_PATH}"></script>`;
export const MAX_REPORT_BYTES = 8 * 1024;
export const MAX_LINE_CHARS = 2000;
export const MAX_REPORTS_PER_PAGE = 20;
export const REPORT_BURST = 10;
export const REPORTS_PER_MINUTE = 30;

/**
 * The reporter. A classic script (it runs before any module), written for old browsers' syntax too. Vite's HMR
 * errors arrive on its WebSocket (subprotocol "vite-hmr") as {type:"error", err}; import.meta.hot is out of reach of a
 * classic script, so the socket's messages are watched instead, through a Proxy that keeps WebSocket's identity.
 */
export const REPORT_SCRIPT = `(function () {
  if (window.__dynoReporter) return;
  window.__dynoReporter = true;
  var sent = 0;
  function cut(value, n) { value = value == null ? "" : String(value); return value.length > n ? value.slice(0, n) + "…" : value; }
  function send(kind, message, extra) {
    if (sent >= ${MAX_REPORTS_PER_PAGE}) return;
    sent += 1;
    var body = { kind: kind, message: cut(message, 1000), page: cut(location.pathname + location.search, 200) };
    if (extra) for (var key in extra) if (extra[key] != null) body[key] = typeof extra[key] === "number" ? extra[key] : cut(extra[key], 3000);
    try {
      fetch("${REPORT_ERRORS_PATH}", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), keepalive: true, credentials: "omit" }).catch(function () {});
    } catch (e) {}
  }
  window.addEventListener("error", function (event) {
    if (event instanceof ErrorEvent) {
      send("error", event.message, { source: event.filename, line: event.lineno, column: event.colno, stack: event.error && event.error.stack });
      return;
    }
    var target = event.target;
    if (target && target !== window && target.tagName) {
      var tag = target.tagName.toLowerCase();
      if (tag === "script" || tag === "link") send("load", "Failed to load " + (target.type === "module" ? "module " : tag + " ") + (target.src || target.href || ""));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    send("unhandledrejection", reason && reason.message ? reason.message : reason, { stack: reason && reason.stack });
  });
  var NativeWebSocket = window.WebSocket;
  if (typeof Proxy === "function" && NativeWebSocket) {
    window.WebSocket = new Proxy(NativeWebSocket, {
      construct: function (target, args, newTarget) {
        var socket = Reflect.construct(target, args, newTarget);
        var protocols = args[1];
        if (protocols && String(protocols).indexOf("vite-hmr") !== -1) {
          socket.addEventListener("message", function (message) {
            try {
              var data = JSON.parse(message.data);
              if (data && data.type === "error" && data.err) {
                var where = data.err.loc ? data.err.loc.file + ":" + data.err.loc.line + ":" + data.err.loc.column : data.err.id;
                send("vite:error", data.err.message, { source: where, stack: data.err.frame || data.err.stack });
              }
            } catch (e) {}
          });
        }
        return socket;
      }
    });
  }
})();
`;

export function serveReportScript(res: ServerResponse): void {
  res.writeHead(200, {
    "Content-Type": "text/javascript; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(REPORT_SCRIPT)),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
  });
  res.end(res.req.method === "HEAD" ? undefined : REPORT_SCRIPT);
}

/**
 * Puts the reporter first in <head> (after `<head …>`; without one, after the doctype and `<html …>`; else at the
 * very start), so it listens before any of the page's own scripts run.
 */
export function injectReportScript(html: string): string {
  const head = /<head(?:\s[^>]*)?>/i.exec(html);
  if (head) return insertAt(html, head.index + head[0].length);
  const open = /^(?:\s*<!--[\s\S]*?-->)*\s*(?:<!doctype[^>]*>)?(?:\s*<html(?:\s[^>]*)?>)?/i.exec(html);
  return insertAt(html, open ? open[0].length : 0);
}

/**
 * The same on bytes, whatever the page's encoding: searched and spliced as latin1, one character per byte, so no
 * byte of the page changes (a UTF-8 round trip would mangle a windows-1252 page).
 */
export function injectReportBytes(html: Buffer): Buffer {
  return Buffer.from(injectReportScript(html.toString("latin1")), "latin1");
}

function insertAt(html: string, at: number): string {
  return html.slice(0, at) + REPORT_SCRIPT_TAG + html.slice(at);
}

/** A token bucket per project: REPORT_BURST at once, then REPORTS_PER_MINUTE. Bounded in projects too. */
export class ReportRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly burst = REPORT_BURST,
    private readonly perMinute = REPORTS_PER_MINUTE,
    private readonly now: () => number = Date.now,
    private readonly maxProjects = 10_000,
  ) {}

  take(projectId: string): boolean {
    const now = this.now();
    let bucket = this.buckets.get(projectId);
    if (bucket) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 60_000) * this.perMinute);
      bucket.at = now;
      this.buckets.delete(projectId); // re-inserted below: the Map's order is the least recently used first
    } else {
      bucket = { tokens: this.burst, at: now };
      if (this.buckets.size >= this.maxProjects) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(projectId, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}

interface BrowserReport {
  kind: string;
  message: string;
  page?: string;
  source?: string;
  line?: number;
  column?: number;
  stack?: string;
}

const KINDS: Record<string, string> = {
  error: "Uncaught error",
  load: "Failed to load",
  unhandledrejection: "Unhandled promise rejection",
  "vite:error": "Vite error",
};

/** The one log line a report becomes, or null when it is not a report. Control characters (but newlines) dropped. */
export function reportLine(body: unknown): string | null {
  if (!body || typeof body !== "object") return null;
  const report = body as Partial<Record<keyof BrowserReport, unknown>>;
  if (typeof report.kind !== "string" || !(report.kind in KINDS)) return null;
  const str = (value: unknown) => (typeof value === "string" ? value : "");
  const num = (value: unknown) => (typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : null);
  const message = str(report.message).trim();
  if (!message) return null;
  const line = num(report.line);
  const column = num(report.column);
  const source = str(report.source);
  const where = source ? ` (${source}${line !== null ? `:${line}${column !== null ? `:${column}` : ""}` : ""})` : "";
  const page = str(report.page);
  const stack = str(report.stack).trim();
  let out = `${report.kind === "load" ? "" : `${KINDS[report.kind]}: `}${message}${where}${page ? ` on ${page}` : ""}`;
  // A stack's first line repeats the message (V8: "TypeError: message"): only the frames are new.
  const frames = stack ? stack.split("\n") : [];
  if (frames[0] && (frames[0].includes(message) || message.includes(frames[0]))) frames.shift();
  if (frames.length) out += `\n${frames.join("\n")}`;
  out = withoutControlCharacters(out).trimEnd();
  return out.length > MAX_LINE_CHARS ? `${out.slice(0, MAX_LINE_CHARS)}…` : out;
}

/** Drops control characters but newlines: a report must not rewrite the log's lines or a terminal's screen. */
function withoutControlCharacters(value: string): string {
  let out = "";
  for (const c of value) {
    const code = c.charCodeAt(0);
    if (c === "\n" || (code >= 0x20 && code !== 0x7f)) out += c;
  }
  return out;
}

/**
 * `POST /__dyno/errors`. Same origin only (the Origin, when a browser sends one, is the preview's own; JSON content
 * needs a CORS preflight cross-origin, which this server never grants), bounded, rate limited per project.
 */
export async function receiveReport(
  req: IncomingMessage,
  res: ServerResponse,
  projectId: string,
  limit: ReportRateLimit,
  record: (line: string) => Promise<void>,
): Promise<void> {
  if (req.method !== "POST") return text(res, 405, "Method not allowed", { Allow: "POST" });
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOrigin(origin, req.headers.host))
    return text(res, 403, "Cross-origin report refused");
  if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) return text(res, 415, "JSON only");
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_REPORT_BYTES) return tooLarge(req, res);
  const body = await readBounded(req, MAX_REPORT_BYTES);
  if (body === null) return tooLarge(req, res);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return text(res, 400, "Not JSON");
  }
  const line = reportLine(parsed);
  if (!line) return text(res, 400, "Not an error report");
  if (!limit.take(projectId)) return text(res, 429, "Too many reports", { "Retry-After": "60" });
  await record(line);
  res.writeHead(204, {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
  });
  res.end();
}

function tooLarge(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader("Connection", "close");
  text(res, 413, "Report too large");
  req.resume();
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return new URL(origin).host === (host ?? "").toLowerCase();
  } catch {
    return false;
  }
}

/** The body, or null once it passes max bytes. */
function readBounded(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.off("data", onData);
        req.resume();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(size > max ? null : Buffer.concat(chunks)));
    req.once("error", reject);
  });
}
