/**
 * Dyno beyond one process, on one machine: the self-hosted engine (`inngest start`) on Postgres + Redis, several app
 * replicas in production mode sharing one Postgres and one data folder, and a round-robin balancer giving them one
 * address for the builder and one for previews. `npm run topology` runs it for people to try; the fault tests
 * (tests/faults/) start it, kill parts of it and check that runs survive.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import path from "node:path";
import getPort from "get-port";
import { startBalancer, type Balancer } from "./balancer";
import { startEngineServer, type EnginePorts, type EngineServer } from "./engine-process";

export interface TopologyOptions {
  /** The Inngest engine binary (findOrBuildEngine). */
  engineBin: string;
  /** Postgres for the app (every replica): a postgres:// URL to a database that exists. */
  databaseUrl: string;
  /** Postgres for the engine's own state (another database). */
  engineDatabaseUrl: string;
  /** Redis for the engine's queue and run state, e.g. redis://127.0.0.1:6379/3 (a database index of its own). */
  redisUrl: string;
  /** Where the replicas keep workspaces and app logs (shared: they run on one host). */
  dataDir: string;
  /** Where each part's log goes (<name>.log). */
  logDir: string;
  replicas?: number;
  /** The builder's address (the balancer); 0: any free port. Previews get the next one. */
  port?: number;
  enginePort?: number;
  /** Extra environment for every replica (e.g. AGENT_BASE_URL of a model server). */
  appEnv?: Record<string, string>;
  /** Keys; generated when not given. */
  eventKey?: string;
  signingKey?: string;
  sessionSecret?: string;
}

export interface Replica {
  index: number;
  url: string;
  port: number;
  previewPort: number;
  child: ChildProcess;
  /** Sends `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same ports after a kill. */
  restart(): Promise<void>;
  alive(): boolean;
}

export interface Topology {
  /** The builder's address: every replica behind it. */
  url: string;
  /** The preview origins' port, behind the same balancer (http://<label>.localhost:<port>). */
  previewPort: number;
  engine: EngineServer;
  replicas: Replica[];
  keys: { eventKey: string; signingKey: string; sessionSecret: string };
  /** Stops the engine (SIGTERM or SIGKILL) and starts it again on the same ports and state. */
  restartEngine(signal?: NodeJS.Signals): Promise<void>;
  close(): Promise<void>;
}

const READY = /Dyno is up at (http\S+)/;

export async function startTopology(options: TopologyOptions): Promise<Topology> {
  const replicaCount = options.replicas ?? 2;
  if (replicaCount < 1) throw new Error("a topology needs at least one replica");
  mkdirSync(options.logDir, { recursive: true });
  const keys = {
    eventKey: options.eventKey ?? randomBytes(16).toString("hex"),
    signingKey: options.signingKey ?? randomBytes(32).toString("hex"),
    sessionSecret: options.sessionSecret ?? randomBytes(32).toString("hex"),
  };
  const host = "127.0.0.1";
  const balancerPort = options.port || (await getPort({ host }));
  const previewBalancerPort = options.port ? balancerPort + 1 : await getPort({ host });
  const enginePorts: EnginePorts = {
    api: options.enginePort || (await getPort({ host })),
    connectGateway: await getPort({ host }),
    connectGatewayGrpc: await getPort({ host }),
    connectExecutorGrpc: await getPort({ host }),
    debugApi: await getPort({ host }),
  };
  const appUrl = `http://${host}:${balancerPort}`;
  const engineUrl = `http://${host}:${enginePorts.api}`;

  const replicaEnv: Record<string, string> = {
    NODE_ENV: "production",
    HOST: host,
    DATABASE_URL: options.databaseUrl,
    DYNO_DATA_DIR: options.dataDir,
    SESSION_SECRET: keys.sessionSecret,
    // Links and same-origin checks name the balancer, not a replica.
    APP_ORIGIN: appUrl,
    PREVIEW_ORIGIN: `http://*.localhost:${previewBalancerPort}`,
    INNGEST_BASE_URL: engineUrl,
    INNGEST_EVENT_KEY: keys.eventKey,
    INNGEST_SIGNING_KEY: keys.signingKey,
    // The engine calls the balancer, so consecutive steps of a run land on any replica.
    INNGEST_SERVE_ORIGIN: appUrl,
    DO_NOT_TRACK: "1",
    ...options.appEnv,
  };

  const replicas: Replica[] = [];
  let engine: EngineServer | undefined;
  let balancers: Balancer[] = [];
  const logs: WriteStream[] = [];
  const closeAll = async () => {
    await Promise.all(replicas.map((r) => r.kill("SIGTERM")));
    await engine?.stop();
    await Promise.all(balancers.map((b) => b.close()));
    await Promise.all(logs.map((log) => new Promise((resolve) => log.end(resolve))));
  };

  try {
    for (let index = 0; index < replicaCount; index++) {
      const port = await getPort({ host });
      const previewPort = await getPort({ host });
      const log = createWriteStream(path.join(options.logDir, `replica-${index + 1}.log`), { flags: "a" });
      logs.push(log);
      replicas.push(
        await startReplica({
          index,
          port,
          previewPort,
          env: { ...replicaEnv, PORT: String(port), PREVIEW_PORT: String(previewPort) },
          log,
        }),
      );
    }
    balancers = [
      await startBalancer({ host, port: balancerPort, upstreams: replicas.map((r) => ({ host, port: r.port })) }),
      await startBalancer({
        host,
        port: previewBalancerPort,
        upstreams: replicas.map((r) => ({ host, port: r.previewPort })),
      }),
    ];
    const startEngine = () =>
      startEngineServer({
        bin: options.engineBin,
        eventKey: keys.eventKey,
        signingKey: keys.signingKey,
        // Synced at every engine start, signed with the signing key: nobody without it can register another URL.
        appUrls: [`${appUrl}/api/inngest`],
        postgresUri: options.engineDatabaseUrl,
        redisUri: options.redisUrl,
        host,
        ports: enginePorts,
        waitForFunctions: ["dyno-coding-agent", "dyno-mark-run-stopped"],
        output: { file: path.join(options.logDir, "engine.log") },
      });
    engine = await startEngine();

    return {
      url: appUrl,
      previewPort: previewBalancerPort,
      get engine() {
        return engine!;
      },
      replicas,
      keys,
      async restartEngine(signal = "SIGTERM") {
        const running = engine!;
        if (signal === "SIGTERM") await running.stop();
        else {
          const exited = new Promise((resolve) => running.process.once("exit", resolve));
          running.process.kill(signal);
          await exited;
        }
        engine = await startEngine();
      },
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

async function startReplica({
  index,
  port,
  previewPort,
  env,
  log,
}: {
  index: number;
  port: number;
  previewPort: number;
  env: Record<string, string>;
  log: WriteStream;
}): Promise<Replica> {
  let child = await spawnReplica(env, log, index);
  const replica: Replica = {
    index,
    url: `http://127.0.0.1:${port}`,
    port,
    previewPort,
    get child() {
      return child;
    },
    alive: () => child.exitCode === null && child.signalCode === null,
    async kill(signal = "SIGTERM") {
      if (!replica.alive()) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill(signal);
      await exited;
    },
    async restart() {
      await replica.kill("SIGTERM");
      child = await spawnReplica(env, log, index);
    },
  };
  return replica;
}

/** `npm start` as a child process (the same entry point), resolved once it says it is up. */
function spawnReplica(env: Record<string, string>, log: WriteStream, index: number): Promise<ChildProcess> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  // The self-hosted engine signs its calls: the dev-mode flag would make the SDK skip checking them.
  delete childEnv.INNGEST_DEV;
  const child = spawn(process.execPath, ["--import", "tsx", "server/index.ts"], {
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const name = `replica ${index + 1}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 60 s:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      if (output.length < 20_000) output += chunk.toString();
      if (READY.test(output)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal ?? code}) before it was up:\n${output}`));
    });
  });
}
