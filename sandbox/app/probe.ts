/**
 * One GET to the running app, through its endpoint (the local app's unix socket, or a URL): after the agent writes a
 * module, asking the dev server for it makes it compile now, so a compile error shows up in the log (and the result)
 * at once, not only when a browser loads the page.
 */
import http from "node:http";
import type { AppEndpoint } from "../types";

export interface ProbeResult {
  status: number;
  /** The start of the body (at most 16 KiB). */
  excerpt: string;
  /** The answer's ETag, if any: Vite's names the compiled module, and answers 304 to it until the module changes. */
  etag?: string;
}

const MAX_EXCERPT = 16 * 1024;

export function probeApp(
  endpoint: AppEndpoint,
  path: string,
  timeoutMs = 5000,
  { ifNoneMatch }: { ifNoneMatch?: string } = {},
): Promise<ProbeResult | undefined> {
  const target = path.startsWith("/") ? path : `/${path}`;
  const conditional: Record<string, string> = ifNoneMatch ? { "if-none-match": ifNoneMatch } : {};
  if (endpoint.kind === "url") return probeUrl(new URL(target, endpoint.url), timeoutMs, conditional);
  return new Promise((resolve) => {
    const headers = { host: "localhost", ...conditional };
    const options = { socketPath: endpoint.path, path: target, headers, timeout: timeoutMs };
    const request = http.get(options, (response) => {
      let excerpt = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        if (excerpt.length < MAX_EXCERPT) excerpt += chunk.slice(0, MAX_EXCERPT - excerpt.length);
        else response.destroy();
      });
      const etag = typeof response.headers.etag === "string" ? response.headers.etag : undefined;
      const done = () => resolve({ status: response.statusCode ?? 0, excerpt, ...(etag && { etag }) });
      response.on("end", done);
      response.on("close", done);
    });
    request.on("timeout", () => request.destroy());
    // A probe is a courtesy: no answer is no news.
    request.on("error", () => resolve(undefined));
  });
}

async function probeUrl(
  url: URL,
  timeoutMs: number,
  headers: Record<string, string>,
): Promise<ProbeResult | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers });
    const text = await response.text();
    const etag = response.headers.get("etag") ?? undefined;
    return { status: response.status, excerpt: text.slice(0, MAX_EXCERPT), ...(etag && { etag }) };
  } catch {
    return undefined;
  }
}
