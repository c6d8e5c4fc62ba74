/**
 * The preview server: serves each project's built files from a separate
 * origin (its own port), so a page the agent built cannot act as the signed-in
 * builder. Its scripts cannot read the builder's pages or call its API with
 * the builder's rights (the app refuses cross-origin writes and sends no CORS
 * headers), and, unlike a sandboxed iframe with an opaque origin, the page
 * keeps working storage (localStorage), which built apps use.
 *
 * URLs are `/<projectId>/<token>/<path…>`; the token comes from
 * app/preview-token.server.ts. Anything that is not a file inside the
 * project's folder answers 404, saying no more than that.
 */
import { constants, createReadStream } from "node:fs";
import { open, realpath, stat, type FileHandle } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { isPreviewProjectId, verifyPreviewToken } from "../app/preview-token.server";

export interface PreviewServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Signs preview tokens (the app's session secret). */
  secret: string;
  /**
   * The folder holding the project's files, or null when the project does
   * not exist or has no files yet (404). Called only with a uuid whose token
   * checked out. Must not create anything.
   */
  resolveDirectory(projectId: string): Promise<string | null>;
  /**
   * Who may frame the preview (a CSP frame-ancestors source list: the builder's origin), or
   * undefined for no restriction. Built pages are meant to be seen inside the builder only.
   */
  frameAncestors?(req: IncomingMessage): string | undefined;
}

export interface PreviewServer {
  /** http://host:port, no trailing slash. */
  url: string;
  port: number;
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
};

export function previewContentType(filePath: string): string {
  return CONTENT_TYPES[path.extname(filePath).toLowerCase()] ?? "application/octet-stream";
}

/** Headers on every answer: no sniffing a type we did not name, nothing cached, no referrer leaking the token. */
const COMMON_HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
} as const;

// O_NONBLOCK: a FIFO someone left in the workspace must not hang the request.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export async function startPreviewServer(options: PreviewServerOptions): Promise<PreviewServer> {
  const host = options.host ?? "127.0.0.1";
  const server = createServer((req, res) => {
    handle(req, res, options).catch((error: unknown) => {
      console.error("preview: request failed:", error);
      if (!res.headersSent) text(res, 500, "Internal error");
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    close: () => closeServer(server),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: PreviewServerOptions): Promise<void> {
  const ancestors = options.frameAncestors?.(req);
  if (ancestors) res.setHeader("Content-Security-Policy", `frame-ancestors ${ancestors}`);
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return text(res, 405, "Method not allowed");
  }
  // The raw target, split before decoding: "%2f" inside a name must stay a character, never become a separator.
  const target = req.url ?? "";
  const queryAt = target.search(/[?#]/);
  const rawPath = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? "" : target.slice(queryAt);
  if (!rawPath.startsWith("/")) return notFound(res);
  const [, projectId = "", token = "", ...rest] = rawPath.split("/");

  if (!isPreviewProjectId(projectId) || !verifyPreviewToken(options.secret, projectId, token)) return notFound(res);
  // `/<id>/<token>` -> `/<id>/<token>/`, so the page's relative URLs resolve inside the preview.
  if (rest.length === 0) return redirect(res, `/${projectId}/${token}/${query}`);

  const names = decodeNames(rest);
  if (!names) return notFound(res);

  const folder = await options.resolveDirectory(projectId);
  if (!folder) return notFound(res);
  const root = await realpath(folder).catch(() => null);
  if (!root) return notFound(res);

  let real = await realpath(path.join(root, ...names)).catch(() => null);
  if (!real || !isInside(root, real)) return notFound(res);
  const info = await stat(real).catch(() => null);
  if (!info) return notFound(res);
  if (info.isDirectory()) {
    // A folder's page must be asked for with a trailing slash, or its relative links would resolve one level up.
    if (!rawPath.endsWith("/")) return redirect(res, `${rawPath.slice(rawPath.lastIndexOf("/") + 1)}/${query}`);
    real = await realpath(path.join(real, "index.html")).catch(() => null);
    if (!real || !isInside(root, real)) return notFound(res);
  }
  await sendFile(req, res, real);
}

/** The decoded path names, or null when one is unsafe ("..", NUL, a separator hidden in an escape) or badly escaped. */
function decodeNames(rest: string[]): string[] | null {
  const names: string[] = [];
  for (const raw of rest) {
    let name: string;
    try {
      name = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (name === "" || name === ".") continue;
    if (name === ".." || name.includes("/") || name.includes("\\") || name.includes("\0")) return null;
    names.push(name);
  }
  return names;
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

async function sendFile(req: IncomingMessage, res: ServerResponse, real: string): Promise<void> {
  let handle: FileHandle;
  try {
    // The path is fully resolved already; O_NOFOLLOW refuses a link swapped in since.
    handle = await open(real, OPEN_FLAGS);
  } catch {
    return notFound(res);
  }
  let streaming = false;
  try {
    const info = await handle.stat();
    if (!info.isFile()) return notFound(res);
    res.writeHead(200, {
      ...COMMON_HEADERS,
      "Content-Type": previewContentType(real),
      "Content-Length": String(info.size),
    });
    if (req.method === "HEAD" || info.size === 0) {
      res.end();
      return;
    }
    // The stream owns the handle from here (autoClose) and closes it however the response ends.
    const stream = createReadStream("", { fd: handle, autoClose: true, start: 0, end: info.size - 1 });
    streaming = true;
    await new Promise<void>((resolve) => {
      stream.once("error", () => {
        res.destroy();
        resolve();
      });
      res.once("close", () => {
        stream.destroy();
        resolve();
      });
      stream.pipe(res);
    });
  } finally {
    if (!streaming) await handle.close();
  }
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    ...COMMON_HEADERS,
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(body)),
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function notFound(res: ServerResponse): void {
  text(res, 404, "Not found");
}

function redirect(res: ServerResponse, location: string): void {
  res.setHeader("Location", location);
  text(res, 302, `Moved to ${location}`);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
