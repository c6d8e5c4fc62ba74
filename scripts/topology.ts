/**
 * `npm run topology`: Dyno as it runs beyond a laptop, on this machine. The self-hosted Inngest engine
 * (`inngest start`) on Postgres + Redis, TOPOLOGY_REPLICAS app replicas (default 2) in production mode behind one
 * round-robin address, one Postgres for the app. Needs a Postgres server (DATABASE_URL's server; the two databases
 * are created when missing) and Redis (REDIS_URL); builds the app, and the engine when it is missing.
 * Ctrl-C stops everything. Logs: DYNO_DATA_DIR/topology/logs/.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import postgres from "postgres";
import { findOrBuildEngine } from "./lib/inngest-engine";
import { startTopology } from "./lib/topology";

const databaseUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/dyno";
const engineDatabaseUrl = process.env.INNGEST_POSTGRES_URI || withDatabase(databaseUrl, "dyno_inngest");
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const replicas = Number(process.env.TOPOLOGY_REPLICAS || 2);
const port = Number(process.env.PORT || 3000);
const enginePort = Number(process.env.INNGEST_PORT || 8288);
const dataDir = path.resolve(process.env.DYNO_DATA_DIR || ".data");
const folder = path.join(dataDir, "topology");

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

function fail(message: string): never {
  console.error(`npm run topology: ${message}`);
  process.exit(1);
}

async function ensureDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const admin = postgres(withDatabase(url, "postgres"), { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const [found] = await admin`select 1 from pg_database where datname = ${name}`;
    if (!found) await admin.unsafe(`create database "${name.replaceAll('"', '""')}"`);
  } catch (error) {
    fail(`cannot reach Postgres at ${new URL(url).host} (${(error as Error).message}); set DATABASE_URL`);
  } finally {
    await admin.end();
  }
}

async function ensureRedis(url: string): Promise<void> {
  const target = new URL(url);
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = net.connect(Number(target.port || 6379), target.hostname);
    socket.setTimeout(3_000, () => resolve(false));
    socket.once("connect", () => resolve(true));
    socket.once("error", () => resolve(false));
    socket.once("close", () => resolve(false));
  }).finally(() => {});
  if (!reachable) fail(`cannot reach Redis at ${target.host}; start it or set REDIS_URL`);
}

/** Keys kept across restarts of the topology, so sessions and the engine's state stay valid. */
function keys(): { eventKey: string; signingKey: string; sessionSecret: string; metricsToken: string } {
  const file = path.join(folder, "keys.json");
  const kept = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Partial<ReturnType<typeof keys>>) : {};
  const made = {
    eventKey: kept.eventKey ?? randomBytes(16).toString("hex"),
    signingKey: kept.signingKey ?? randomBytes(32).toString("hex"),
    sessionSecret: kept.sessionSecret ?? randomBytes(32).toString("hex"),
    // Added after the others: a keys.json written before it gets one.
    metricsToken: kept.metricsToken ?? randomBytes(24).toString("hex"),
  };
  if (Object.keys(kept).length < Object.keys(made).length) {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify(made, null, 2), { mode: 0o600 });
  }
  return made;
}

if (!Number.isInteger(replicas) || replicas < 1 || replicas > 8) fail("TOPOLOGY_REPLICAS must be 1 to 8");
await ensureDatabase(databaseUrl);
await ensureDatabase(engineDatabaseUrl);
await ensureRedis(redisUrl);
// Always: a build left from older code would run that code in production mode (a few seconds).
console.log("Building the app (npm run build)…");
execFileSync("npm", ["run", "build"], { stdio: "ignore" });
const engine = await findOrBuildEngine();
const { eventKey, signingKey, sessionSecret, metricsToken } = keys();
const topology = await startTopology({
  engineBin: engine.bin,
  databaseUrl,
  engineDatabaseUrl,
  redisUrl,
  dataDir,
  logDir: path.join(folder, "logs"),
  replicas,
  port,
  enginePort,
  eventKey,
  signingKey,
  sessionSecret,
  appEnv: { METRICS_TOKEN: metricsToken },
});
console.log(`Dyno (production topology) is up at ${topology.url}
  ${replicas} app replicas: ${topology.replicas.map((r) => r.url).join(", ")}
  previews: http://<project>.localhost:${topology.previewPort}
  engine (inngest start, Postgres + Redis): ${topology.engine.url}
  health: ${topology.url}/healthz; metrics: scrape each replica (a request through the balancer reaches any one),
    curl -H "authorization: Bearer $(node -p 'require("${path.join(folder, "keys.json")}").metricsToken')" ${topology.replicas[0]!.url}/metrics
  logs: ${path.join(folder, "logs")}
Ctrl-C stops it.`);

let closing = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    void topology.close().then(() => process.exit(0));
  });
}
