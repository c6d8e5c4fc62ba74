/**
 * `npm run dev`: the Remix app (Vite dev server, HMR) and the Inngest engine
 * pointed at it, stopping together. Needs no database server (embedded
 * PGlite unless DATABASE_URL is set) and no download from GitHub (the engine
 * is built from Go source once and cached).
 */
import { createServer } from "node:net";
import path from "node:path";
import getPort from "get-port";
import {
  DEFAULT_ENGINE_PORTS,
  startEngineDevServer,
  type EngineDevServer,
  type EnginePorts,
} from "./lib/engine-process";
import { describeDashboard } from "./lib/engine-ui";
import { findOrBuildEngine } from "./lib/inngest-engine";

const host = process.env.HOST ?? "127.0.0.1";
const enginePort = Number(process.env.INNGEST_PORT ?? DEFAULT_ENGINE_PORTS.api);
const engineUrl = `http://${host}:${enginePort}`;
// The app must know where the engine is before its modules load.
process.env.INNGEST_DEV ??= "1";
process.env.INNGEST_BASE_URL ??= engineUrl;

/** Fails early, naming the variable to change, instead of a bind error deep in a child process. */
async function assertPortFree(port: number, variable: string) {
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer()
      .once("error", () => resolve(false))
      .listen(port, host, () => probe.close(() => resolve(true)));
  });
  if (!free) {
    console.error(`Port ${port} on ${host} is in use (another \`npm run dev\`?). Stop it or set ${variable}.`);
    process.exit(1);
  }
}
const appPort = Number(process.env.PORT ?? 3000);
await assertPortFree(appPort, "PORT");
// Built apps are previewed from a second origin: the next port unless PREVIEW_PORT says otherwise.
await assertPortFree(Number(process.env.PREVIEW_PORT ?? appPort + 1), "PREVIEW_PORT");
await assertPortFree(enginePort, "INNGEST_PORT");
// The engine's other listeners (connect gateway, gRPC, debug API) are unused
// by an app served over HTTP: take their defaults when free, else any port.
const enginePorts: EnginePorts = {
  api: enginePort,
  connectGateway: await getPort({ host, port: DEFAULT_ENGINE_PORTS.connectGateway }),
  connectGatewayGrpc: await getPort({ host, port: DEFAULT_ENGINE_PORTS.connectGatewayGrpc }),
  connectExecutorGrpc: await getPort({ host, port: DEFAULT_ENGINE_PORTS.connectExecutorGrpc }),
  debugApi: await getPort({ host, port: DEFAULT_ENGINE_PORTS.debugApi }),
};

const engine = await findOrBuildEngine();
console.log(
  `[engine] ${engine.source === "built" ? "built" : "using"} ${engine.bin} (${engine.version}, ${describeDashboard(engine.dashboard)})`,
);

const { env } = await import("../app/env.server");
const { startAppServer } = await import("../server/app");
const config = env();
const app = await startAppServer({ mode: "development", host: config.HOST, port: config.PORT });

const engineLog = path.resolve(config.DYNO_DATA_DIR, "logs", "inngest-dev.log");
let devServer: EngineDevServer;
try {
  devServer = await startEngineDevServer({
    bin: engine.bin,
    appUrl: `${app.url}/api/inngest`,
    host,
    ports: enginePorts,
    waitForFunctions: ["dyno-coding-agent"],
    output: { file: engineLog },
  });
} catch (error) {
  console.error(String(error instanceof Error ? error.message : error));
  await app.close();
  process.exit(1);
}

console.log(`
  Dyno        ${app.url}   (sign up, then "Run the offline demo" in a project: no model key needed)
  Previews    ${app.previewOrigins}   (built apps, an origin per project)
  Inngest     ${devServer.url}  (engine API; log: ${path.relative(process.cwd(), engineLog)})${dashboardLine(devServer.url)}
  Database    ${config.DATABASE_URL ? "Postgres at DATABASE_URL" : `embedded PGlite in ${path.join(config.DYNO_DATA_DIR, "pglite")}`}

  Ctrl-C stops both.
`);

/** The engine's dashboard (runs, events, functions, send event) when the build embeds it. */
function dashboardLine(url: string): string {
  const dashboard = engine.dashboard;
  if (dashboard?.included === false) return `\n  Dashboard   none: ${dashboard.reason}`;
  return `\n  Dashboard   ${url}   (Inngest's dev server UI: runs, events, functions, send event)`;
}

let stopping = false;
async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  await Promise.allSettled([devServer.stop(), app.close()]);
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));
devServer.process.once("exit", (code, signal) => {
  // Ctrl-C reaches the engine too (same process group): that is a normal stop.
  if (stopping || signal === "SIGINT") return void shutdown(0);
  console.error(
    `[engine] exited unexpectedly (code ${code}); stopping the app. Last lines:\n${devServer.log().slice(-2000)}`,
  );
  void shutdown(1);
});
