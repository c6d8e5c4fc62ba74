/** What every answer of the preview server shares: its safety headers and the small plain answers. */
import type { IncomingMessage, ServerResponse } from "node:http";

/** No sniffing a type we did not name, no referrer leaking the origin's label to other sites. */
export const SAFETY_HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
} as const;

/** The static files and Dyno's own pages are never cached: the agent rewrites them at any moment. */
export const NO_STORE = { "Cache-Control": "no-store" } as const;

export function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...SAFETY_HEADERS,
    ...NO_STORE,
    ...headers,
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(body)),
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

export function notFound(res: ServerResponse): void {
  text(res, 404, "Not found");
}

export function redirect(res: ServerResponse, location: string): void {
  res.setHeader("Location", location);
  text(res, 302, `Moved to ${location}`);
}

/**
 * A page load (the frame, a link followed) rather than a script's fetch or a module import: those get HTML pages
 * (the starting page, report.js injected); everything else gets plain answers. Sec-Fetch-Dest where the browser sends
 * it, else what it accepts.
 */
export function isHtmlNavigation(req: IncomingMessage): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const dest = req.headers["sec-fetch-dest"];
  if (typeof dest === "string") return dest === "document" || dest === "iframe" || dest === "frame";
  return /\btext\/html\b/.test(req.headers.accept ?? "");
}

/** Splits the raw target before decoding: "%2f" inside a name must stay a character, never become a separator. */
export function splitTarget(target: string): { path: string; query: string } {
  const at = target.search(/[?#]/);
  return at === -1 ? { path: target, query: "" } : { path: target.slice(0, at), query: target.slice(at) };
}

export function escapeHtml(value: string): string {
  return value.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}
