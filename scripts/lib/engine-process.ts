/**
 * Runs the Inngest dev server (`inngest dev`) pointed at the app's
 * /api/inngest, and waits until it has synced the app's functions.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import path from "node:path";
import { engineEnv } from "./inngest-engine";

export interface EnginePorts {
  api: number;
  connectGateway: number;
  connectGatewayGrpc: number;
  connectExecutorGrpc: number;
  debugApi: number;
}

export const DEFAULT_ENGINE_PORTS: EnginePorts = {
  api: 8288,
  connectGateway: 8289,
  connectGatewayGrpc: 50052,
  connectExecutorGrpc: 50053,
  debugApi: 7777,
};

export interface EngineDevServerOptions {
  bin: string;
  /** The app's serve endpoint, e.g. http://127.0.0.1:3000/api/inngest */
  appUrl: string;
  host?: string;
  ports?: EnginePorts;
  /** Function slugs to wait for (e.g. "dyno-coding-agent"); none: wait for any. */
  waitForFunctions?: string[];
  /** "buffer" keeps the log in memory (for errors and tests); a path appends it to that file. */
  output?: "buffer" | { file: string };
  readyTimeoutMs?: number;
}

export interface EngineDevServer {
  url: string;
  process: ChildProcess;
  /** What the engine printed (output: "buffer"). */
  log(): string;
  stop(): Promise<void>;
}

export async function startEngineDevServer({
  bin,
  appUrl,
  host = "127.0.0.1",
  ports = DEFAULT_ENGINE_PORTS,
  waitForFunctions = [],
  output = "buffer",
  readyTimeoutMs = 60_000,
}: EngineDevServerOptions): Promise<EngineDevServer> {
  const args = [
    "dev",
    "-u",
    appUrl,
    "--no-discovery",
    "--host",
    host,
    "--port",
    String(ports.api),
    "--connect-gateway-port",
    String(ports.connectGateway),
    "--connect-gateway-grpc-port",
    String(ports.connectGatewayGrpc),
    "--connect-executor-grpc-port",
    String(ports.connectExecutorGrpc),
    "--debug-api-port",
    String(ports.debugApi),
  ];
  const child = spawn(bin, args, { env: engineEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let buffered = "";
  let keep = (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    if (buffered.length > 2_000_000) buffered = buffered.slice(-1_000_000);
  };
  if (output !== "buffer") {
    mkdirSync(path.dirname(output.file), { recursive: true });
    const file = createWriteStream(output.file, { flags: "a" });
    const remember = keep;
    keep = (chunk) => {
      file.write(chunk);
      remember(chunk);
    };
    child.once("exit", () => file.end());
  }
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const url = `http://${host}:${ports.api}`;
  const engine: EngineDevServer = {
    url,
    process: child,
    log: () => buffered,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };

  const deadline = Date.now() + readyTimeoutMs;
  let lastProblem = "engine not answering yet";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`The Inngest engine exited with code ${child.exitCode}:\n${buffered.slice(-4000)}`);
    }
    try {
      const response = await fetch(`${url}/dev`, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) {
        const info = (await response.json()) as { functions?: { slug?: string }[] };
        const slugs = new Set((info.functions ?? []).map((f) => f.slug));
        const missing = waitForFunctions.filter((slug) => !slugs.has(slug));
        if (slugs.size > 0 && missing.length === 0) return engine;
        lastProblem = slugs.size === 0 ? `no functions synced from ${appUrl} yet` : `missing ${missing.join(", ")}`;
      }
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await engine.stop();
  throw new Error(`The Inngest engine was not ready after ${readyTimeoutMs} ms (${lastProblem}):\n${buffered.slice(-4000)}`);
}
