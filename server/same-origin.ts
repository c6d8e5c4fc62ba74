/**
 * Cross-site request forgery guard for every write (any method but GET, HEAD,
 * OPTIONS). A browser says where a request comes from in two ways, and both
 * must agree it is this app:
 *
 * - Fetch metadata (Sec-Fetch-Site): only "same-origin" (or "none", a request
 *   the user started, such as a bookmark) passes. "same-site" is refused too:
 *   in development the preview server is the same site on another port, and a
 *   built page must not post to the builder.
 * - Origin: when sent, it must be the app's own origin exactly (scheme, host
 *   and port): APP_ORIGIN, or else the request's own scheme and Host.
 *
 * Requests with neither header are not a browser's (the Inngest engine,
 * scripts, curl) and pass: they cannot carry a builder's cookie unknowingly.
 */
import type express from "express";
import { env } from "../app/env.server";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const ALLOWED_FETCH_SITES = new Set(["same-origin", "none"]);

type WriteRequest = Pick<express.Request, "method" | "headers" | "protocol">;

/** The origin browsers use for this app: APP_ORIGIN, else the request's own scheme and Host. */
export function appOrigin(req: WriteRequest, configured = env().APP_ORIGIN): string {
  return configured ?? `${req.protocol}://${req.headers.host ?? ""}`;
}

/** Why a write is refused, or null when it may go on. */
export function crossOriginRefusal(req: WriteRequest, configured = env().APP_ORIGIN): string | null {
  if (SAFE_METHODS.has(req.method)) return null;
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && !ALLOWED_FETCH_SITES.has(site)) return `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  const expected = appOrigin(req, configured);
  if (origin !== undefined && origin !== expected) {
    if (site === "same-origin") warnMisconfiguredOrigin(origin, expected);
    return `Origin: ${origin}`;
  }
  return null;
}

export function refuseCrossOriginWrites(req: express.Request, res: express.Response, next: express.NextFunction): void {
  if (crossOriginRefusal(req) === null) return next();
  res.status(403).set("Connection", "close").type("text/plain").send("Cross-origin request refused");
}

let warned = false;

/** The browser vouches it is on our origin, yet names another: the app is behind a proxy it does not know of. */
function warnMisconfiguredOrigin(origin: string, expected: string): void {
  if (warned) return;
  warned = true;
  console.warn(
    `http: refused a same-origin write from ${origin}: the app takes its origin to be ${expected}. ` +
      "Behind a reverse proxy, set APP_ORIGIN to the public origin (and have the proxy pass Host).",
  );
}
