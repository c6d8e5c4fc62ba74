/**
 * Test helpers for the app process: small node servers written into a workspace (no Vite needed), HTTP over the
 * app's unix socket, and a /proc scan for the processes carrying a test's unique marker.
 */
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import http from "node:http";
import type { AppEndpoint, AppStatus, Sandbox } from "../types";

/** A server listening on `port` (5173, Vite's default, unless told) on localhost, answering "<name> <path>". */
export function serverScript(
  name: string,
  options: { port?: number; host?: string; exitAfterMs?: number; hogAfterListen?: boolean; holdBytes?: number } = {},
): string {
  const { port = 5173, host = "localhost", exitAfterMs, hogAfterListen, holdBytes } = options;
  return [
    `const http = require("http");`,
    `http.createServer((req, res) => res.end(${JSON.stringify(name)} + " " + req.url))`,
    `  .listen(${port}, ${JSON.stringify(host)}, () => {`,
    holdBytes ? `    globalThis.held = Buffer.alloc(${holdBytes}, 1);` : "",
    `    console.log("listening");`,
    exitAfterMs !== undefined
      ? `    setTimeout(() => { console.error("boom"); process.exit(1); }, ${exitAfterMs});`
      : "",
    hogAfterListen
      ? `    const a = []; setInterval(() => { if (a.length < 150) a.push(Buffer.alloc(4e6, 1)); }, 5);`
      : "",
    `  });`,
  ].join("\n");
}

export async function writeServer(sandbox: Sandbox, script: string, file = "server.js"): Promise<void> {
  await sandbox.writeFile(file, script);
}

/** GET path through the app's socket: status and body. */
export function getThrough(endpoint: AppEndpoint | null, path = "/"): Promise<{ status: number; body: string }> {
  if (endpoint?.kind !== "socket") return Promise.reject(new Error(`no socket endpoint: ${JSON.stringify(endpoint)}`));
  return new Promise((resolve, reject) => {
    const request = http.get({ socketPath: endpoint.path, path, timeout: 10_000 }, (response) => {
      let body = "";
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
  });
}

/** Pids of the processes whose command line holds marker (and, when given, starts with `startsWith`). */
export async function processesWith(marker: string, startsWith?: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).replace(/\0/g, " ");
    if (cmdline.includes(marker) && (!startsWith || cmdline.startsWith(startsWith))) found.push(Number(entry));
  }
  return found;
}

export async function waitUntil<T>(
  check: () => Promise<T | undefined | false | null>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function waitForState(
  sandbox: Sandbox,
  matches: (status: AppStatus) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<AppStatus> {
  return waitUntil(
    async () => {
      const status = await sandbox.app.status();
      return matches(status) ? status : undefined;
    },
    `${what} (app status: ${JSON.stringify(await sandbox.app.status())})`,
    timeoutMs,
  );
}

/**
 * Another Dyno process on this host (orphan-child.ts) that opens the project's sandbox, starts its app with
 * `command` and keeps running it until killed; `ready` gives the status it printed.
 */
export function startDynoProcess(
  dataDir: string,
  projectId: string,
  isolation: "bubblewrap" | "none",
  command: string,
  idleTimeoutMs?: number,
) {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "sandbox/app/orphan-child.ts",
      dataDir,
      projectId,
      isolation,
      command,
      ...(idleTimeoutMs ? [String(idleTimeoutMs)] : []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /ready (.*)\n/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) =>
      reject(new Error(`the Dyno process exited (${code}) before it was ready:\n${output}`)),
    );
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { child, ready, exited };
}
