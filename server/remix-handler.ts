/**
 * @remix-run/express's request handler (v2.17, same behaviour), with the
 * request body bounded (server/body-limit.ts) on its way into Remix: the
 * adapter hands Remix the raw socket stream, so a chunked body could
 * otherwise grow without bound inside request.formData(). The adapter does
 * not export its request and response converters, hence the copy.
 */
import {
  createReadableStreamFromReadable,
  createRequestHandler as createRemixRequestHandler,
  writeReadableStreamToWritable,
  type AppLoadContext,
  type ServerBuild,
} from "@remix-run/node";
import type express from "express";
import { bodyLimitFor, sendBodyTooLarge, withBodyLimit } from "./body-limit";

export interface RemixHandlerOptions {
  build: ServerBuild | (() => Promise<ServerBuild>);
  mode: string;
  getLoadContext(req: express.Request, res: express.Response): AppLoadContext | Promise<AppLoadContext>;
}

export function createRemixHandler({ build, mode, getLoadContext }: RemixHandlerOptions): express.RequestHandler {
  const handleRequest = createRemixRequestHandler(build, mode);
  return async (req, res, next) => {
    try {
      const limit = bodyLimitFor(req.path, req.headers["content-type"]);
      const request = withBodyLimit(createRemixRequest(req, res), limit, () => sendBodyTooLarge(req, res, limit));
      const response = await handleRequest(request, await getLoadContext(req, res));
      // A 413 went out while Remix was reading the body: what it made of the rest is dropped.
      if (res.headersSent) return void (await response.body?.cancel());
      await sendRemixResponse(res, response);
    } catch (error) {
      next(error);
    }
  };
}

function createRemixRequest(req: express.Request, res: express.Response): Request {
  // req.hostname has no port: take it from X-Forwarded-Host or Host.
  const portOf = (host: string | undefined) => Number.parseInt(host?.split(":")[1] ?? "", 10);
  const port = [portOf(req.get("X-Forwarded-Host")), portOf(req.get("host"))].find(Number.isSafeInteger);
  const url = new URL(`${req.protocol}://${req.hostname}${port ? `:${port}` : ""}${req.originalUrl}`);
  // Abort loaders and actions once no response can be written (`close` without `finish`).
  let controller: AbortController | null = new AbortController();
  res.on("finish", () => (controller = null));
  res.on("close", () => controller?.abort());
  const headers = new Headers();
  for (const [key, values] of Object.entries(req.headers)) {
    for (const value of Array.isArray(values) ? values : values ? [values] : []) headers.append(key, value);
  }
  const init: RequestInit & { duplex?: "half" } = { method: req.method, headers, signal: controller.signal };
  if (req.method !== "GET" && req.method !== "HEAD") {
    init.body = createReadableStreamFromReadable(req);
    init.duplex = "half";
  }
  return new Request(url.href, init);
}

async function sendRemixResponse(res: express.Response, response: Response): Promise<void> {
  res.statusMessage = response.statusText;
  res.status(response.status);
  for (const [key, value] of response.headers.entries()) res.append(key, value);
  if (/text\/event-stream/i.test(response.headers.get("Content-Type") ?? "")) res.flushHeaders();
  if (response.body) await writeReadableStreamToWritable(response.body, res);
  else res.end();
}
