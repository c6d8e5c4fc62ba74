/** Raw requests to the preview server, with the project's Host header, and an app process whose state tests set. */
import { request } from "node:http";
import type { AppEndpoint, AppLogLine, AppLogs, AppProcess, AppStatus } from "../../sandbox/types";
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

/** The app process as the preview sees it; the tests set its state. */
export class TestApp implements AppProcess {
  /** The port it says it listens on inside the sandbox. */
  static readonly PORT = 5173;
  state: AppStatus["state"] = "running";
  command: string | null = "npm run dev";
  reason: string | null = null;
  /** When it was last started; null: never (the agent has not called start_app yet). */
  startedAt: string | null = new Date(0).toISOString();
  socketPath = "";
  lines: AppLogLine[] = [];
  touches = 0;
  starts = 0;
  logged: Array<{ stream: string; text: string }> = [];

  async status(): Promise<AppStatus> {
    return {
      state: this.state,
      command: this.command,
      port: this.state === "running" ? TestApp.PORT : null,
      startedAt: this.startedAt,
      restarts: 0,
      reason: this.reason,
      nextRestartAt: null,
    };
  }
  async start(): Promise<AppStatus> {
    this.starts += 1;
    this.state = "starting";
    return this.status();
  }
  async restart(): Promise<AppStatus> {
    return this.start();
  }
  async stop(): Promise<AppStatus> {
    this.state = "stopped";
    return this.status();
  }
  async logs(options: { maxLines?: number } = {}): Promise<AppLogs> {
    const lines = this.lines.slice(-(options.maxLines ?? 100));
    return { lines, nextSeq: this.lines.length, truncated: false };
  }
  async appendLog(stream: "system" | "browser", text: string): Promise<void> {
    this.logged.push({ stream, text });
  }
  touch(): void {
    this.touches += 1;
  }
  async endpoint(): Promise<AppEndpoint | null> {
    return this.state === "running" ? { kind: "socket", path: this.socketPath } : null;
  }
}
