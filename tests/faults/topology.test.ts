/**
 * Faults on the production topology (scripts/lib/topology.ts): the self-hosted engine (`inngest start`) on Postgres
 * + Redis, two app replicas in production mode behind one round-robin address, one Postgres. Each test breaks one
 * part in the middle of a run and checks that the run finishes with nothing done twice: a replica SIGKILLed while
 * its step runs a command, the engine stopped (SIGTERM) and killed (SIGKILL), the app's Postgres gone and back,
 * and the live event streams of a killed replica, which reconnect through the balancer and miss nothing.
 *
 * Needs a Postgres server (DATABASE_URL) and Redis at 127.0.0.1:6379 (REDIS_URL), as the topology does.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type Database } from "../../db/client";
import { runEvents } from "../../db/schema";
import { startTopology, type Topology } from "../../scripts/lib/topology";
import { startCuttableLink } from "../support/cuttable-link";
import { reserveTestDatabase, type ReservedDatabase } from "../support/database";
import { createBuilder } from "../support/fixtures";
import { scripted, startTestModel, turn, type ReplayServer } from "../support/model";
import { connectEventStream } from "../support/sse";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

const hasPostgres = Boolean(process.env.DATABASE_URL);
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

describe.skipIf(!hasPostgres)("faults on the production topology (needs DATABASE_URL and Redis)", () => {
  let appDb: ReservedDatabase;
  let engineDb: ReservedDatabase;
  let database: Database;
  let replay: ReplayServer;
  let topology: Topology;
  let dataDir: string;
  let redisIndex: number;
  let link: Awaited<ReturnType<typeof startCuttableLink>>;

  beforeAll(async () => {
    // Production mode serves the built app: built now, so it is this checkout's code (a few seconds).
    execFileSync("npm", ["run", "build"], { stdio: "ignore" });
    appDb = await reserveTestDatabase("postgres");
    engineDb = await reserveTestDatabase("postgres");
    database = createDatabase(appDb.options);
    await database.migrate();
    const model = await startTestModel();
    replay = model.replay;
    dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-faults-"));
    // A Redis database of its own, emptied first: the engine's queue must not see another engine's keys.
    redisIndex = 8 + Math.floor(Math.random() * 8);
    await redisCommand(REDIS_URL, redisIndex, "FLUSHDB");
    // The replicas reach Postgres through a link the test can take down, as a restarting server looks to clients.
    const target = new URL(appDb.env.DATABASE_URL!);
    link = await startCuttableLink(Number(target.port || 5432), target.hostname);
    const throughLink = new URL(target);
    throughLink.host = `127.0.0.1:${link.port}`;
    topology = await startTopology({
      engineBin: inject("engineBin"),
      databaseUrl: throughLink.toString(),
      engineDatabaseUrl: engineDb.env.DATABASE_URL!,
      redisUrl: `${REDIS_URL.replace(/\/\d*$/, "")}/${redisIndex}`,
      dataDir,
      logDir: path.join(dataDir, "logs"),
      replicas: 2,
      appEnv: { ...model.env, RUN_RECONCILE_INTERVAL: "0s" },
    });
    // This process starts runs as a replica's chat action would: same database, the engine's event key.
    Object.assign(process.env, model.env, {
      DATABASE_URL: appDb.env.DATABASE_URL,
      DYNO_DATA_DIR: dataDir,
      SESSION_SECRET: topology.keys.sessionSecret,
      INNGEST_BASE_URL: topology.engine.url,
      INNGEST_EVENT_KEY: topology.keys.eventKey,
      INNGEST_SIGNING_KEY: topology.keys.signingKey,
    });
    delete process.env.INNGEST_DEV;
  });

  afterAll(async () => {
    await topology?.close();
    await link?.close();
    await replay?.close();
    await database?.close();
    await appDb?.release();
    await engineDb?.release();
    if (redisIndex !== undefined) await redisCommand(REDIS_URL, redisIndex, "FLUSHDB").catch(() => {});
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  // A test that failed half-way may leave a replica killed: the next one starts with both up.
  afterEach(async () => {
    for (const replica of topology?.replicas ?? []) if (!replica.alive()) await replica.restart();
  });

  const workspaceFile = (projectId: string, name: string) =>
    readFileSync(path.join(dataDir, "workspaces", projectId, name), "utf8");

  async function start(turns: Parameters<typeof scripted>[1], prompt: string) {
    const { startRun } = await import("../../app/models/runs.server");
    const { user, project } = await createBuilder(database.db);
    const run = await startRun(database.db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt },
      model: scripted(replay, turns),
    });
    return { user, project, run };
  }

  const eventsOf = (runId: string) =>
    database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.id));

  it("finishes a run through the other replica when the one running its step is killed (SIGKILL), repeating no finished step", async () => {
    const { project, run } = await start(
      [
        turn.run("echo one >> once.txt"),
        turn.run("sleep 4 && echo two >> slow.txt"),
        turn.write("after.txt", "after the crash"),
        turn.reply("Done."),
      ],
      "survive a replica",
    );
    await waitForRunEvent(database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 2,
      timeoutMs: 60_000,
    });
    const victim = await replicaRunning(topology, "echo two >> slow.txt");
    await victim.kill("SIGKILL");

    expect((await waitForRunToFinish(database, run, 180_000)).type).toBe("complete");
    expect(workspaceFile(project.id, "once.txt")).toBe("one\n");
    expect(workspaceFile(project.id, "slow.txt")).toBe("two\n");
    expect(workspaceFile(project.id, "after.txt")).toBe("after the crash");
    const events = await eventsOf(run.id);
    // Iteration 1 finished before the kill: replayed from memo, never re-run (every row written once).
    const first = events.filter((e) => e.data.iteration === 1);
    expect(first.map((e) => e.type)).toEqual(expect.arrayContaining(["thinking", "tool_call", "tool_result"]));
    expect(first.map((e) => e.writes)).toEqual(first.map(() => 1));
    expect(events.some((e) => e.type === "resuming" && e.data.step === "act-2")).toBe(true);
    expect(events.filter((e) => e.type === "complete")).toHaveLength(1);
    await victim.restart();
  });

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`resumes a run after the engine is restarted mid-step (${signal})`, async () => {
      const { project, run } = await start(
        [
          turn.run("echo one >> once.txt"),
          turn.run("sleep 3 && echo two >> twice.txt"),
          turn.run("echo three >> once.txt"),
          turn.reply("Done."),
        ],
        `survive an engine ${signal}`,
      );
      await waitForRunEvent(database, {
        projectId: project.id,
        runId: run.id,
        until: (row) => row.type === "tool_call" && row.data.iteration === 2,
        timeoutMs: 60_000,
      });
      await topology.restartEngine(signal);

      expect((await waitForRunToFinish(database, run, 180_000)).type).toBe("complete");
      expect(workspaceFile(project.id, "once.txt")).toBe("one\nthree\n");
      // The step in flight finished its command; a lost engine may call it again, and then it runs once more at
      // most: the one side effect that may repeat is the interrupted step's own (as after any crash).
      expect(workspaceFile(project.id, "twice.txt")).toMatch(/^(two\n){1,2}$/);
      const events = await eventsOf(run.id);
      const first = events.filter((e) => e.data.iteration === 1);
      expect(first.map((e) => e.type)).toEqual(expect.arrayContaining(["thinking", "tool_call", "tool_result"]));
      expect(first.map((e) => e.writes)).toEqual(first.map(() => 1));
      expect(events.filter((e) => e.type === "complete")).toHaveLength(1);
    });
  }

  it("resumes a run whose database went away mid-step, and its live streams pick up where they were", async () => {
    const { user, project, run } = await start(
      [turn.run("sleep 3 && echo ok >> db.txt"), turn.write("later.txt", "after the outage"), turn.reply("Done.")],
      "survive the database",
    );
    const { signedInCookie } = await import("../support/accounts");
    const cookie = await signedInCookie(user.id);
    const stream = await followProject(topology.url, project.id, cookie);
    await waitForRunEvent(database, { projectId: project.id, runId: run.id, until: (row) => row.type === "tool_call" });

    link.down();
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    await link.up();

    expect((await waitForRunToFinish(database, run, 180_000)).type).toBe("complete");
    expect(workspaceFile(project.id, "db.txt")).toBe("ok\n");
    const ids = (await eventsOf(run.id)).map((e) => e.id);
    expect(await stream.until(ids.at(-1)!)).toEqual(ids);
    stream.close();
  });

  it("reconnects the live streams of a killed replica to the other one, missing nothing and repeating nothing", async () => {
    const { user, project, run } = await start(
      [turn.run("sleep 3 && echo a > a.txt"), turn.run("sleep 2 && echo b > b.txt"), turn.reply("Done.")],
      "keep streaming",
    );
    const { signedInCookie } = await import("../support/accounts");
    const cookie = await signedInCookie(user.id);
    // Round-robin: of four streams, two are on each replica.
    const streams = await Promise.all([0, 1, 2, 3].map(() => followProject(topology.url, project.id, cookie)));
    await waitForRunEvent(database, { projectId: project.id, runId: run.id, until: (row) => row.type === "tool_call" });
    await topology.replicas[1]!.kill("SIGKILL");

    expect((await waitForRunToFinish(database, run, 180_000)).type).toBe("complete");
    const ids = (await eventsOf(run.id)).map((e) => e.id);
    for (const stream of streams) expect(await stream.until(ids.at(-1)!)).toEqual(ids);
    expect(streams.reduce((sum, s) => sum + s.reconnects(), 0)).toBeGreaterThanOrEqual(2);
    for (const stream of streams) stream.close();
    await topology.replicas[1]!.restart();
  });

  it("stops a run from the other replica than the one running its step: the command is killed, nothing after it runs", async () => {
    const { user, project, run } = await start(
      [turn.run("sleep 40 && echo late > late.txt"), turn.write("never.txt", "never"), turn.reply("Done.")],
      "stop me from anywhere",
    );
    await waitForRunEvent(database, {
      projectId: project.id,
      runId: run.id,
      until: (row) => row.type === "tool_call",
      timeoutMs: 60_000,
    });
    const running = await replicaRunning(topology, "sleep 40 && echo late");
    const other = topology.replicas.find((replica) => replica !== running)!;
    const { signedInCookie } = await import("../support/accounts");
    const stop = await fetch(`${other.url}/projects/${project.id}`, {
      method: "POST",
      headers: { Cookie: await signedInCookie(user.id) },
      body: new URLSearchParams({ intent: "stop", runId: run.id }),
      redirect: "manual",
    });
    expect(stop.status).toBeLessThan(400);
    await stop.body?.cancel();
    // Well before the command's 40 s: the replica running it heard the stop through Postgres.
    expect((await waitForRunToFinish(database, run, 20_000)).type).toBe("stopped");
    await waitUntilGone("sleep 40 && echo late");
    expect(existsSync(path.join(dataDir, "workspaces", project.id, "late.txt"))).toBe(false);
    expect(existsSync(path.join(dataDir, "workspaces", project.id, "never.txt"))).toBe(false);
  });

  it("previews the app one replica started through every replica's preview server, with one dev server, and starts it on a survivor when its replica dies", async () => {
    const { user, project } = await createBuilder(database.db);
    const marker = `topology-app-${randomUUID()}`;
    const { createAgentContext } = await import("../../inngest/agent/context");
    const sandbox = await createAgentContext().sandbox(project.id);
    await sandbox.writeFile("package.json", JSON.stringify({ scripts: { dev: `node server.js ${marker}` } }));
    await sandbox.writeFile(
      "server.js",
      `require("node:http").createServer((q, s) => s.end("hello from " + process.pid)).listen(3000, "127.0.0.1");`,
    );
    const { signedInCookie } = await import("../support/accounts");
    const cookie = await signedInCookie(user.id);
    // Restart in the Logs view, through the balancer: one replica starts it.
    const restart = await fetch(`${topology.url}/projects/${project.id}?view=logs`, {
      method: "POST",
      headers: { Cookie: cookie },
      body: new URLSearchParams({ intent: "app-restart" }),
      redirect: "manual",
    });
    expect(restart.status).toBe(200);
    await restart.body?.cancel();

    const { previewLabel } = await import("../../app/preview-token.server");
    const host = `${previewLabel(topology.keys.sessionSecret, project.id)}.localhost:${topology.previewPort}`;
    const visit = () => getWithHost(topology.previewPort, host);
    const served = async () => {
      const deadline = Date.now() + 60_000;
      let answer = await visit();
      while (!(answer.status === 200 && /^hello from/.test(answer.body)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        answer = await visit();
      }
      return answer;
    };
    // "The app is starting" until it listens.
    await served();
    // Round-robin: four visits reach both replicas' preview servers; all see the one app.
    const bodies = await Promise.all([visit(), visit(), visit(), visit()]);
    const appPids = await serverPids(marker);
    expect(appPids).toHaveLength(1);
    for (const answer of bodies)
      expect(answer).toMatchObject({ status: 200, body: expect.stringMatching(/^hello from \d+$/) });

    // The replica running it dies, and the app with it; the next visit starts it on the survivor.
    const owner = await replicaRunning(topology, `server.js ${marker}`);
    await owner.kill("SIGKILL");
    const answer = await served();
    expect(answer).toMatchObject({ status: 200, body: expect.stringMatching(/^hello from \d+$/) });
    const survivorPids = await serverPids(marker);
    expect(survivorPids).toHaveLength(1);
    expect(survivorPids[0]).not.toBe(appPids[0]);
    await owner.restart();
    await sandbox.app.stop();
  });
});

/** The replica whose process tree runs a command line containing `marker` (the step in flight). */
async function replicaRunning(topology: Topology, marker: string) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        continue;
      }
      if (!cmdline.includes(marker)) continue;
      for (let ancestor = Number(pid); ancestor > 1; ancestor = parentOf(ancestor)) {
        const replica = topology.replicas.find((r) => r.child.pid === ancestor);
        if (replica) return replica;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no replica runs "${marker}"`);
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

/**
 * A browser tab's EventSource on the project's stream: when the connection ends it reconnects (through the
 * balancer, so possibly to another replica) with the last id it saw, as browsers do.
 */
async function followProject(appUrl: string, projectId: string, cookie: string) {
  const received: number[] = [];
  let reconnects = 0;
  let closed = false;
  let current: Awaited<ReturnType<typeof connectEventStream>> | undefined;
  const loop = (async () => {
    let last = 0;
    while (!closed) {
      try {
        current = await connectEventStream(`${appUrl}/projects/${projectId}/events`, { cookie, lastEventId: last });
        for (;;) {
          const message = await current.nextOf("run-event", 120_000);
          const event = JSON.parse(message.data) as { id: number };
          received.push(event.id);
          last = event.id;
        }
      } catch {
        if (closed) return;
        reconnects += 1;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  })();
  return {
    reconnects: () => reconnects,
    /** The ids received, once `lastId` has arrived (a fresh project: all of them are the run's). */
    async until(lastId: number): Promise<number[]> {
      const deadline = Date.now() + 30_000;
      while (!received.includes(lastId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      return [...received];
    },
    close() {
      closed = true;
      current?.close();
      void loop;
    },
  };
}

/** One Redis command on database `index`, spoken in RESP over a socket (no client library needed for a FLUSHDB). */
function redisCommand(url: string, index: number, command: string): Promise<string> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(target.port || 6379), target.hostname);
    let reply = "";
    socket.setTimeout(5_000, () => socket.destroy(new Error("Redis did not answer within 5 s")));
    socket.on("data", (chunk) => {
      reply += chunk.toString();
      if (reply.split("\r\n").length > 2) {
        socket.end();
        if (reply.includes("-ERR")) reject(new Error(`Redis: ${reply.trim()}`));
        else resolve(reply);
      }
    });
    socket.on("error", reject);
    socket.write(`SELECT ${index}\r\n${command}\r\n`);
  });
}

/** The app's own server processes (node server.js <marker>). */
async function serverPids(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmdline.startsWith("node") && cmdline.includes(marker)) found.push(Number(pid));
    } catch {
      // gone
    }
  }
  return found;
}

/** GET / from 127.0.0.1:<port> with the Host of a preview origin (Node does not resolve *.localhost itself). */
function getWithHost(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path: "/", headers: { Host: host }, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Waits until no process runs a command line containing `marker`. */
async function waitUntilGone(marker: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = readdirSync("/proc").some((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker);
      } catch {
        return false;
      }
    });
    if (!left) return;
    if (Date.now() > deadline) throw new Error(`"${marker}" still runs`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
