/**
 * The usual security headers, from helmet (as the Epic Stack does), with a
 * Content-Security-Policy the app's own pages pass:
 *
 * - scripts: this origin, plus Remix's inline scripts, which carry a nonce
 *   made per response (res.locals.cspNonce, passed to Remix in the load
 *   context and from there to <Scripts nonce>);
 * - frames: only the preview server's origin (and Modal's tunnels), the one
 *   thing the builder frames;
 * - framed by nobody (frame-ancestors 'none', X-Frame-Options: DENY): another
 *   site, or a built page sharing the builder's site, cannot overlay the
 *   builder's controls (clickjacking);
 * - HSTS in production only (development runs on plain http://localhost).
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type express from "express";
import helmet from "helmet";
import { env } from "../app/env.server";
import { previewFrameSource } from "../app/preview.server";

type Response = ServerResponse & { locals?: { cspNonce?: string } };

/** Modal sandboxes' preview tunnels (projects on SANDBOX_PROVIDER=modal frame those). */
const MODAL_TUNNELS = ["https://*.modal.host", "https://*.modal.run"];

/** Gives each response a fresh nonce in res.locals.cspNonce; run it before securityHeaders. */
export function makeCspNonce(_req: express.Request, res: express.Response, next: express.NextFunction): void {
  res.locals.cspNonce = randomBytes(16).toString("base64");
  next();
}

export function securityHeaders(mode: "development" | "production"): express.RequestHandler {
  const nonce = (_req: IncomingMessage, res: Response) => `'nonce-${res.locals?.cspNonce ?? ""}'`;
  // Every project's preview origin: `http://*.localhost:<preview port>` in development, PREVIEW_ORIGIN's wildcard.
  const preview = () => previewFrameSource() ?? "'none'";
  return helmet({
    contentSecurityPolicy: {
      directives: {
        "default-src": ["'self'"],
        "script-src": ["'self'", nonce],
        "script-src-attr": ["'none'"],
        // React's style={…} attributes and Vite's injected <style> in development.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        // Vite's HMR socket in development ('self' covers ws: of this origin in CSP3 browsers; older ones need it named).
        "connect-src": mode === "development" ? ["'self'", "ws:", "wss:"] : ["'self'"],
        "frame-src": [preview, ...MODAL_TUNNELS],
        "child-src": [preview, ...MODAL_TUNNELS],
        "worker-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
        // The app may be served over plain http (development, a LAN): upgrading its requests would break it.
        "upgrade-insecure-requests": null,
      },
    },
    xFrameOptions: { action: "deny" },
    strictTransportSecurity: mode === "production" ? { maxAge: 365 * 24 * 60 * 60, includeSubDomains: false } : false,
    // Not no-referrer: with it, Chromium sends `Origin: null` on same-origin form posts, which the CSRF check refuses.
    referrerPolicy: { policy: "same-origin" },
  });
}

/**
 * The preview server's frame-ancestors: only the builder may frame a built page. APP_ORIGIN when set; else,
 * without PREVIEW_ORIGIN, the builder is on this machine's loopback at the app's port (`*.localhost` preview origins
 * resolve to loopback only, so a builder elsewhere could not show them anyway; no scheme: a CSP source without one
 * matches the preview's own scheme and its https upgrade). With PREVIEW_ORIGIN but no APP_ORIGIN the builder's
 * origin is unknown here: no restriction, and the startup log says so.
 */
export function previewFrameAncestors(appPort: number): (req: IncomingMessage) => string | undefined {
  const { APP_ORIGIN, PREVIEW_ORIGIN } = env();
  if (APP_ORIGIN) return () => APP_ORIGIN;
  if (PREVIEW_ORIGIN) {
    console.warn(
      "preview: PREVIEW_ORIGIN is set but APP_ORIGIN is not: any site may frame built pages. Set APP_ORIGIN.",
    );
    return () => undefined;
  }
  const loopback = `localhost:${appPort} 127.0.0.1:${appPort}`;
  return () => loopback;
}
