/**
 * Runs the Inngest engine as a child process and waits until it is ready:
 * the dev server (`inngest dev`, what `npm run dev` and most tests use), or
 * the self-hosted production engine (`inngest start`, signed step calls and
 * event keys), both pointed at the app's /api/inngest.
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
  /** The executor's queue poll interval (`--tick`, ms); unset: ENGINE_TICK_MS. */
  tickMs?: number;
}

export interface EngineDevServer {
  url: string;
  process: ChildProcess;
  /** What the engine printed (output: "buffer"). */
  log(): string;
  stop(): Promise<void>;
}

export interface EngineServerOptions {
  bin: string;
  /** A key apps send events with (INNGEST_EVENT_KEY). */
  eventKey: string;
  /** Hex, even length: the engine signs step calls with it, apps sign syncs (INNGEST_SIGNING_KEY). */
  signingKey: string;
  /** App serve URLs the engine syncs at start; none: apps sync themselves (`PUT /api/inngest`). */
  appUrls?: string[];
  /** Where the engine keeps its state (SQLite) and queue snapshots; kept across restarts. */
  sqliteDir?: string;
  /** Postgres for the engine's state instead of SQLite. */
  postgresUri?: string;
  /** An external Redis for queue and run state instead of the engine's in-process one. */
  redisUri?: string;
  host?: string;
  /** The debug API port is unused: `inngest start` opens it only with DEBUG set. */
  ports?: EnginePorts;
  /** Function slugs to wait for (synced through appUrls or a PUT); none: ready once the API answers. */
  waitForFunctions?: string[];
  output?: "buffer" | { file: string };
  readyTimeoutMs?: number;
  /** The executor's queue poll interval (`--tick`, ms); unset: ENGINE_TICK_MS. */
  tickMs?: number;
}

/** A self-hosted `inngest start`; its REST API (/v1) wants `Authorization: Bearer <signing key>`. */
export interface EngineServer extends EngineDevServer {
  signingKey: string;
}

/** An app as the engine records it: the URL it calls and each function's step URL. */
export interface EngineApp {
  name: string;
  url: string | null;
  functions: { slug: string; url: string }[];
}

/**
 * How often the engine's executor polls its queue (`--tick`), for every engine Dyno starts. The engine's default
 * is 150 ms; at 50 a run starts (and a queued step is picked up) up to 100 ms sooner, for about 1.3 % of a core
 * more while idle (measured here: 1.5 % at 150 ms, 2.9 % at 50).
 */
export const ENGINE_TICK_MS = 50;

export async function startEngineDevServer({
  bin,
  appUrl,
  host = "127.0.0.1",
  ports = DEFAULT_ENGINE_PORTS,
  waitForFunctions = [],
  output = "buffer",
  readyTimeoutMs = 60_000,
  tickMs = ENGINE_TICK_MS,
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
    "--tick",
    String(tickMs),
  ];
  const engine = spawnEngine(bin, args, engineEnv(), `http://${host}:${ports.api}`, output);
  await waitUntilReady(engine, readyTimeoutMs, async () => {
    const response = await fetch(`${engine.url}/dev`, { signal: AbortSignal.timeout(2_000) });
    if (!response.ok) return `the engine answered ${response.status}`;
    const info = (await response.json()) as { functions?: { slug?: string }[] };
    return missingFunctions(info.functions ?? [], waitForFunctions, appUrl);
  });
  return engine;
}

/**
 * Runs the self-hosted engine (`inngest start`) the way production does:
 * event and signing keys required, step calls signed. Resolves once its API
 * answers and the functions asked for are synced.
 */
export async function startEngineServer({
  bin,
  eventKey,
  signingKey,
  appUrls = [],
  sqliteDir,
  postgresUri,
  redisUri,
  host = "127.0.0.1",
  ports = DEFAULT_ENGINE_PORTS,
  waitForFunctions = [],
  output = "buffer",
  readyTimeoutMs = 60_000,
  tickMs = ENGINE_TICK_MS,
}: EngineServerOptions): Promise<EngineServer> {
  const args = [
    "start",
    "--tick",
    String(tickMs),
    "--host",
    host,
    "--port",
    String(ports.api),
    "--connect-gateway-port",
    String(ports.connectGateway),
    "--event-key",
    eventKey,
    "--signing-key",
    signingKey,
    ...appUrls.flatMap((url) => ["-u", url]),
    ...(sqliteDir ? ["--sqlite-dir", sqliteDir] : []),
    ...(postgresUri ? ["--postgres-uri", postgresUri] : []),
    ...(redisUri ? ["--redis-uri", redisUri] : []),
  ];
  // `start` reads every INNGEST_* variable as a setting (INNGEST_PORT, INNGEST_SIGNING_KEY, ...): pass none of
  // the caller's, only the gRPC ports it has no flag for.
  const env = engineEnv();
  for (const key of Object.keys(env)) if (key.startsWith("INNGEST_")) delete env[key];
  env.INNGEST_CONNECT_GATEWAY_GRPC_PORT = String(ports.connectGatewayGrpc);
  env.INNGEST_CONNECT_EXECUTOR_GRPC_PORT = String(ports.connectExecutorGrpc);
  const engine = { ...spawnEngine(bin, args, env, `http://${host}:${ports.api}`, output), signingKey };
  await waitUntilReady(engine, readyTimeoutMs, async () => {
    const health = await fetch(`${engine.url}/health`, { signal: AbortSignal.timeout(2_000) });
    if (!health.ok) return `the engine answered ${health.status}`;
    if (waitForFunctions.length === 0) return undefined;
    const synced = (await engineApps(engine.url)).flatMap((app) => app.functions);
    return missingFunctions(synced, waitForFunctions, appUrls.join(", ") || "a PUT /api/inngest");
  });
  return engine;
}

/** The apps the engine knows, with the URLs it calls (its GraphQL API, the one its dashboard reads). */
export async function engineApps(engineUrl: string): Promise<EngineApp[]> {
  const response = await fetch(`${engineUrl}/v0/gql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ apps { name url functions { slug url } } }" }),
    signal: AbortSignal.timeout(5_000),
  });
  const result = (await response.json()) as { data?: { apps: EngineApp[] }; errors?: { message: string }[] };
  if (!result.data)
    throw new Error(`the engine's apps query failed: ${result.errors?.map((e) => e.message).join("; ")}`);
  return result.data.apps;
}

/** undefined when every wanted slug is synced, else what is still missing. */
function missingFunctions(synced: { slug?: string }[], wanted: string[], from: string): string | undefined {
  const slugs = new Set(synced.map((f) => f.slug));
  const missing = wanted.filter((slug) => !slugs.has(slug));
  if (slugs.size > 0 && missing.length === 0) return undefined;
  return slugs.size === 0 ? `no functions synced from ${from} yet` : `missing ${missing.join(", ")}`;
}

function spawnEngine(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  url: string,
  output: "buffer" | { file: string },
): EngineDevServer {
  const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
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

  return {
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
}

/** Polls `problem` (undefined: ready) until the deadline; stops the engine and throws if it never gets there. */
async function waitUntilReady(
  engine: EngineDevServer,
  readyTimeoutMs: number,
  problem: () => Promise<string | undefined>,
): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  let lastProblem = "engine not answering yet";
  while (Date.now() < deadline) {
    if (engine.process.exitCode !== null) {
      throw new Error(`The Inngest engine exited with code ${engine.process.exitCode}:\n${engine.log().slice(-4000)}`);
    }
    try {
      const current = await problem();
      if (current === undefined) return;
      lastProblem = current;
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await engine.stop();
  throw new Error(
    `The Inngest engine was not ready after ${readyTimeoutMs} ms (${lastProblem}):\n${engine.log().slice(-4000)}`,
  );
}
