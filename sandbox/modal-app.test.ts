/**
 * The Modal provider's app process, run on this machine: ModalAppProcess and its in-box supervisor script
 * (runtime/modal-app.mjs) are the real ones; only the transport differs, running each argv here (with this
 * machine's node, as the box runs node:20-slim's) instead of through Modal's exec. The tunnel is this host's
 * loopback on the app port. Modal itself is exercised by the gated tests in modal.test.ts.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ModalAppProcess, type AppBoxTransport, type ModalAppOptions } from "./modal-app";
import { appArgv } from "./modal-scripts";
import type { AppLogLine, AppStatus } from "./types";

function localTransport(workdir: string): AppBoxTransport {
  return {
    run: (argv, { maxOutputBytes }) =>
      new Promise((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { cwd: workdir, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => {
          if (stdout.length < maxOutputBytes) stdout += chunk.toString();
        });
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        child.on("error", reject);
        child.on("close", (code) => resolve({ exitCode: code ?? 1, stdout, stderr }));
      }),
    writeFile: async (absolutePath, content) => {
      await mkdir(path.dirname(absolutePath), { recursive: true });
      await writeFile(absolutePath, content);
    },
    tunnelUrl: async (port) => `http://127.0.0.1:${port}`,
  };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const value = await read();
    if (done(value)) return value;
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Whether any process's command line on this machine contains the marker. */
async function running(marker: string): Promise<boolean> {
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${pid}/cmdline`, "utf8")).includes(marker)) return true;
    } catch {
      // Exited meanwhile.
    }
  }
  return false;
}

const SERVER = `
const http = require("http");
const [port, host] = process.argv.slice(2);
http.createServer((q, r) => r.end("hello from " + process.env.PORT + " " + q.url))
  .listen(Number(port), host, () => console.log("ready on " + port));
`;

describe("Modal app process (supervisor run locally)", () => {
  let root: string;
  let workdir: string;
  const apps: ModalAppProcess[] = [];

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "dyno-modal-app-"));
    workdir = path.join(root, "workspace");
    await mkdir(workdir);
    await writeFile(path.join(workdir, "server.js"), SERVER);
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.stop("test over").catch(() => {})));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function app(options: Partial<ModalAppOptions> = {}) {
    const appPort = options.appPort ?? (await freePort());
    const stateDir = path.join(root, `state-${apps.length}-${appPort}`);
    const created = new ModalAppProcess(localTransport(workdir), {
      workdir,
      stateDir,
      appPort,
      pollMs: 50,
      startTimeoutMs: 20_000,
      restartBackoffMs: [50, 100],
      ...options,
    });
    apps.push(created);
    return { app: created, appPort, stateDir };
  }

  it("starts a server that listens on the app port, serves it through the endpoint, and stops it", async () => {
    const { app: process_, appPort } = await app();
    const status = await process_.start({ command: `node server.js ${appPort} 0.0.0.0` });
    expect(status).toMatchObject({ state: "running", port: appPort, restarts: 0, reason: null });
    const endpoint = await process_.endpoint();
    expect(endpoint).toEqual({ kind: "url", url: `http://127.0.0.1:${appPort}` });
    expect(await (await fetch(`${endpoint!.kind === "url" ? endpoint!.url : ""}/x`)).text()).toBe(
      `hello from ${appPort} /x`,
    );
    // The same command again: already running, nothing restarted.
    const again = await process_.start({ command: `node server.js ${appPort} 0.0.0.0` });
    expect(again.startedAt).toBe(status.startedAt);

    const stopped = await process_.stop("done here");
    expect(stopped).toMatchObject({ state: "stopped", reason: "done here", port: null });
    expect(await process_.endpoint()).toBeNull();
    const texts = (await process_.logs()).lines.map((line) => `${line.stream}: ${line.text}`);
    // The server's own line and the supervisor's "listening" may come in either order.
    expect(texts[0]).toBe(`system: started \`node server.js ${appPort} 0.0.0.0\``);
    expect(texts.slice(1, 3).sort()).toEqual([`stdout: ready on ${appPort}`, `system: listening on port ${appPort}`]);
    expect(texts.slice(3)).toEqual(["system: stopped: done here"]);
  });

  it("bridges the app port to a dev server listening on loopback elsewhere (Vite's 5173 case)", async () => {
    const { app: process_, appPort } = await app();
    const own = await freePort();
    const status = await process_.start({ command: `node server.js ${own} 127.0.0.1` });
    expect(status).toMatchObject({ state: "running", port: own });
    expect(await (await fetch(`http://127.0.0.1:${appPort}/via-bridge`)).text()).toBe(
      `hello from ${appPort} /via-bridge`,
    );
  });

  it("runs the workspace's dev script when no command is given, and says so when there is none", async () => {
    const { app: process_, appPort } = await app();
    const nothing = await process_.start();
    expect(nothing.state).toBe("crashed");
    expect(nothing.command).toBeNull();
    expect(nothing.reason).toMatch(/nothing to run/);

    await writeFile(
      path.join(workdir, "package.json"),
      JSON.stringify({ scripts: { dev: "node server.js $PORT 0.0.0.0" } }),
    );
    try {
      const status = await process_.start();
      expect(status).toMatchObject({ state: "running", command: "npm run dev", port: appPort });
    } finally {
      await rm(path.join(workdir, "package.json"));
    }
  });

  it("restarts a crashing command with backoff, then gives up with the reason", async () => {
    const { app: process_ } = await app({ restartBackoffMs: [50, 100] });
    await process_.start({ command: "echo boom >&2; exit 3" });
    const status = await until(
      () => process_.status(),
      (s: AppStatus) => s.state === "crashed" && s.nextRestartAt === null,
      "the supervisor to give up",
    );
    expect(status).toMatchObject({ restarts: 2, reason: "exited with code 3; gave up after 2 restarts" });
    const lines = (await process_.logs()).lines.map((line) => `${line.stream}: ${line.text}`);
    expect(lines.filter((line) => line === "stderr: boom")).toHaveLength(3);
    expect(lines).toContain("system: exited with code 3; restarting in 50 ms");
    expect(lines).toContain("system: exited with code 3; restarting in 100 ms");
    expect(lines.at(-1)).toBe("system: exited with code 3; gave up after 2 restarts");
  });

  it("kills the whole process group on stop, background children included", async () => {
    const { app: process_, appPort } = await app();
    const marker = `dyno-modal-app-child-${appPort}`;
    await process_.start({ command: `sh -c 'sleep 300; : ${marker}' & node server.js ${appPort} 0.0.0.0` });
    expect(await running(marker)).toBe(true);
    await process_.stop();
    await until(
      () => running(marker),
      (alive) => !alive,
      "the background child to be gone",
    );
  });

  it("stops when idle, with the reason", async () => {
    const { app: process_, appPort } = await app({ idleTimeoutMs: 300 });
    await process_.start({ command: `node server.js ${appPort} 0.0.0.0` });
    const status = await until(
      () => process_.status(),
      (s: AppStatus) => s.state === "stopped",
      "the idle stop",
    );
    expect(status.reason).toBe("idle for 300 ms");
  });

  it("reports a supervisor that was killed as crashed, and starts again", async () => {
    const { app: process_, appPort, stateDir } = await app();
    await process_.start({ command: `node server.js ${appPort} 0.0.0.0` });
    const supervisor = Number(await readFile(path.join(stateDir, "supervisor.pid"), "utf8"));
    const state = JSON.parse(await readFile(path.join(stateDir, "state.json"), "utf8")) as { childPid: number };
    process.kill(supervisor, "SIGKILL");
    process.kill(-state.childPid, "SIGKILL");
    const status = await until(
      () => process_.status(),
      (s: AppStatus) => s.state === "crashed",
      "the crash to show",
    );
    expect(status.reason).toMatch(/supervisor is gone/);
    expect((await process_.start()).state).toBe("running");
  });

  it("restarts with a new command, and keeps seq growing across restarts", async () => {
    const { app: process_, appPort } = await app();
    await process_.start({ command: `node server.js ${appPort} 0.0.0.0` });
    const first = await process_.logs();
    const restarted = await process_.restart({ command: `node server.js ${appPort} 0.0.0.0 # second` });
    expect(restarted).toMatchObject({ state: "running", command: `node server.js ${appPort} 0.0.0.0 # second` });
    const newer = await process_.logs({ sinceSeq: first.nextSeq });
    expect(newer.lines[0]!.seq).toBe(first.nextSeq);
    expect(newer.lines.map((line) => line.text)).toContain("stopped: restarting");
    expect(newer.truncated).toBe(false);
  });

  it("keeps the log bounded (oldest dropped, flagged) and takes browser lines", async () => {
    // It never listens: start() gives up waiting at once and leaves it "starting".
    const { app: process_ } = await app({ logLimitBytes: 4096, startTimeoutMs: 100 });
    await process_.start({ command: "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done; sleep 300" });
    await until(
      () => process_.logs({ maxLines: 1000 }),
      (logs) => logs.lines.some((line: AppLogLine) => line.text === "line-399"),
      "all output",
    );
    await process_.appendLog("browser", "Uncaught TypeError: x is not a function");
    const all = await process_.logs({ maxLines: 1000 });
    expect(all.truncated).toBe(true);
    // Two files of at most 4 KiB: far fewer than the 400 lines written.
    expect(JSON.stringify(all.lines).length).toBeLessThan(2 * 4096);
    expect(all.lines[0]!.seq).toBeGreaterThan(100);
    expect(all.lines.at(-1)).toMatchObject({ stream: "browser", text: "Uncaught TypeError: x is not a function" });
    const seqs = all.lines.map((line) => line.seq);
    expect(seqs).toEqual(seqs.map((_, index) => seqs[0]! + index));
    expect(all.nextSeq).toBe(seqs.at(-1)! + 1);
    const lastTwo = await process_.logs({ sinceSeq: all.nextSeq - 2, maxLines: 1000 });
    expect(lastTwo.lines).toHaveLength(2);
    const capped = await process_.logs({ maxLines: 3 });
    expect(capped).toMatchObject({ truncated: true });
    expect(capped.lines.map((line) => line.seq)).toEqual(seqs.slice(-3));
  });

  it("writes its script again when a command in the box removed it", async () => {
    const { app: process_, stateDir } = await app();
    expect((await process_.logs()).lines).toEqual([]);
    for (const name of await readdir(stateDir)) await rm(path.join(stateDir, name), { recursive: true, force: true });
    await process_.appendLog("system", "still here");
    expect((await process_.logs()).lines.map((line) => line.text)).toEqual(["still here"]);
  });

  it("refuses hostile input with a clear error", async () => {
    const { app: process_ } = await app();
    await expect(process_.start({ command: "echo \0" })).rejects.toThrow(/NUL byte/);
    await expect(process_.start({ command: "   " })).rejects.toThrow(/empty/);
    await expect(process_.appendLog("stdout" as "system", "x")).rejects.toThrow(/"system" or "browser"/);
    await process_.appendLog("browser", `${"x".repeat(10_000)}\0`);
    const [line] = (await process_.logs()).lines;
    expect(line!.text.length).toBeLessThan(2_100);
  });

  it("builds the script's argv with every input as its own argument", () => {
    expect(appArgv("/tmp/s.mjs", "logs", "/tmp/d", ["0", "5"])).toEqual([
      "node",
      "/tmp/s.mjs",
      "logs",
      "/tmp/d",
      "0",
      "5",
    ]);
  });
});
