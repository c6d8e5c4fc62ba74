/**
 * Request bodies are bounded before anything parses them: a declared
 * Content-Length over the route's limit is answered 413 at once (nothing is
 * read), and a body that turns out longer (chunked, no length) is cut off on
 * the stream the moment it passes the limit. Either way the app holds at most
 * one limit's worth of a body, and the connection is closed soon after the
 * 413 (the rest of the upload is dropped unread into nothing, never kept).
 */
import type express from "express";
import { env } from "../app/env.server";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Longest first match wins; anything else gets DEFAULT_BODY_LIMIT. */
const BODY_LIMITS: Array<{ path: RegExp; bytes: number }> = [
  // The engine's step calls carry the run's memoized step results: it sends at most 4 MiB per call and hands
  // larger state over its API instead (MaxSDKRequestBodySize in inngest v1.13); the rest is headroom.
  { path: /^\/api\/inngest\/?$/, bytes: 8 * MiB },
  // The builder page's chat form: a 20,000-character prompt, URL-encoded, is at most ~240 KB (12 bytes a character).
  { path: /^\/projects\/[^/]+\/?$/, bytes: 256 * KiB },
];
/** Sign-in, sign-up, sign-out, the project list: a few short fields. */
export const DEFAULT_BODY_LIMIT = 64 * KiB;

/** The builder page, whose chat form may carry images (decision 036). */
const BUILDER_PAGE = /^\/projects\/[^/]+\/?$/;
/** The prompt and the form's other fields, beside the images, in a multipart body (its part headers included). */
export const MULTIPART_TEXT_ALLOWANCE = 256 * KiB;

/**
 * The body limit of a route. A multipart post to the builder page (a prompt with images) may carry
 * PROMPT_IMAGE_MAX_COUNT images of PROMPT_IMAGE_MAX_BYTES each besides its text; every other body keeps its limit
 * (an urlencoded prompt: 256 KiB). The prompt form's parser (app/models/prompt-images.server.ts) checks each image
 * against its own limit as it reads, so the total here only bounds what is read at all.
 */
export function bodyLimitFor(
  pathname: string,
  contentType = "",
  images: { maxBytes: number; maxCount: number } = imageLimits(),
): number {
  if (BUILDER_PAGE.test(pathname) && isMultipart(contentType) && images.maxCount > 0) {
    return images.maxCount * images.maxBytes + MULTIPART_TEXT_ALLOWANCE;
  }
  return BODY_LIMITS.find((limit) => limit.path.test(pathname))?.bytes ?? DEFAULT_BODY_LIMIT;
}

function isMultipart(contentType: string): boolean {
  return contentType.split(";")[0]!.trim().toLowerCase() === "multipart/form-data";
}

function imageLimits(): { maxBytes: number; maxCount: number } {
  const { PROMPT_IMAGE_MAX_BYTES, PROMPT_IMAGE_MAX_COUNT } = env();
  return { maxBytes: PROMPT_IMAGE_MAX_BYTES, maxCount: PROMPT_IMAGE_MAX_COUNT };
}

/** What a body past its limit errors with; app/http/form.server.ts recognizes it by `code` (Vite loads routes apart). */
export class BodyTooLargeError extends Error {
  readonly code = "BODY_TOO_LARGE";
  constructor(readonly limit: number) {
    super(`Request body too large (at most ${formatBytes(limit)})`);
  }
}

export function formatBytes(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} bytes`;
}

/**
 * How long a refused upload's connection is kept after the 413 (the rest of the body read and dropped) for the
 * client to read the answer, unless it closes first.
 */
export const LINGER_MS = 5_000;

/** Answers 413, then closes the connection (lingering: see closeAfterResponse). */
export function sendBodyTooLarge(req: express.Request, res: express.Response, limit: number): void {
  if (res.headersSent) return;
  closeAfterResponse(req, res);
  res.status(413).type("text/plain").send(new BodyTooLargeError(limit).message);
}

/**
 * Closing a socket with unread data in it resets the connection, and a client
 * still sending loses the answer it has not read yet (its kernel drops what
 * it received on a reset: "fetch failed", ECONNRESET, as the fresh-clone CI
 * saw). Node ends a response that closes its connection with
 * `socket.destroySoon()`, which does exactly that the moment the answer is
 * out; here it lingers instead: the answer is written, our side half-closed,
 * the rest of the body read and dropped, and the socket destroyed when the
 * client closes it or LINGER_MS later.
 */
function closeAfterResponse(req: express.Request, res: express.Response): void {
  const socket = req.socket;
  socket.destroySoon = () => {
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
    req.resume();
    socket.end();
  };
  // A response that keeps its connection would not call destroySoon: this one must close it.
  res.setHeader("connection", "close");
}

/** Express middleware: refuses a declared Content-Length over the route's limit before reading a byte. */
export function refuseOversizedBodies(req: express.Request, res: express.Response, next: express.NextFunction): void {
  const declared = Number(req.headers["content-length"] ?? 0);
  const limit = bodyLimitFor(req.path, req.headers["content-type"]);
  if (declared > limit) return sendBodyTooLarge(req, res, limit);
  next();
}

/**
 * The request with its body counted as it is read: past `limit` bytes the body
 * errors with BodyTooLargeError and `onTooLarge` runs (once). Chunks are
 * pulled only as the reader asks, so nothing is buffered ahead.
 */
export function withBodyLimit(request: Request, limit: number, onTooLarge: () => void): Request {
  if (!request.body) return request;
  const source = request.body.getReader();
  let seen = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { done, value } = await source.read();
        if (done) return controller.close();
        seen += value.byteLength;
        if (seen > limit) {
          // The source is left unread, not cancelled: cancelling would reset the socket before the 413 is sent.
          onTooLarge();
          return controller.error(new BodyTooLargeError(limit));
        }
        controller.enqueue(value);
      },
      cancel: (reason) => source.cancel(reason),
    },
    { highWaterMark: 0 },
  );
  return new Request(request, { body, duplex: "half" } as RequestInit);
}
