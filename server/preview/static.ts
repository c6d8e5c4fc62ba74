/**
 * A project without an app process: its workspace's files at `/`. Anything that is not a file inside the workspace
 * (a hostile path, a symlink out, a FIFO) answers 404, saying no more than that. HTML pages get the error reporter
 * injected (./report.ts).
 */
import { constants, createReadStream } from "node:fs";
import { open, realpath, stat, type FileHandle } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { NO_STORE, notFound, redirect, SAFETY_HEADERS, splitTarget, text } from "./http";
import { injectReportBytes } from "./report";

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

/** HTML pages up to this size are read whole to inject the reporter; a larger one is sent as it is. */
export const MAX_INJECTED_HTML_BYTES = 4 * 1024 * 1024;

export function previewContentType(filePath: string): string {
  return CONTENT_TYPES[path.extname(filePath).toLowerCase()] ?? "application/octet-stream";
}

// O_NONBLOCK: a FIFO someone left in the workspace must not hang the request.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export async function serveStatic(req: IncomingMessage, res: ServerResponse, folder: string | null): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD")
    return text(res, 405, "Method not allowed", { Allow: "GET, HEAD" });
  const { path: rawPath, query } = splitTarget(req.url ?? "");
  if (!rawPath.startsWith("/")) return notFound(res);
  const names = decodeNames(rawPath.split("/").slice(1));
  if (!names || !folder) return notFound(res);
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
    const type = previewContentType(real);
    const headers = { ...SAFETY_HEADERS, ...NO_STORE, "Content-Type": type };
    if (type.startsWith("text/html") && info.size <= MAX_INJECTED_HTML_BYTES) {
      const body = injectReportBytes(await handle.readFile());
      res.writeHead(200, { ...headers, "Content-Length": String(body.length) });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    res.writeHead(200, { ...headers, "Content-Length": String(info.size) });
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
