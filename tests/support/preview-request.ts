/** Raw requests to the preview server, with the project's Host header. */
import { request } from "node:http";
import type { PreviewServer } from "../../server/preview";

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * A request with the path sent exactly as written (fetch() would resolve "../" and "%2e%2e" segments before sending,
 * hiding what a hostile client can really send), to 127.0.0.1 with the Host given: Node's resolver may not map
 * *.localhost names to loopback the way browsers do.
 */
export function raw(
  server: Pick<PreviewServer, "port">,
  host: string | null,
  target: string,
  method = "GET",
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: server.port,
        path: target,
        method,
        agent: false,
        setHost: host === null,
        headers: host === null ? headers : { ...headers, Host: host },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
