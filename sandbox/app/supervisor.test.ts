/**
 * The local app process under real bubblewrap and the host's cgroups, with small node servers as apps: start and the
 * port it found, HTTP through its socket, crash restarts with backoff and giving up, idle stop, two projects side by
 * side, a memory hog, destroy, shutdown, and the command kept across a restart of Dyno.
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LimitMode } from "../confine";
import { DEFAULT_SANDBOX_LIMITS } from "../limits";
import { openLocalSandbox, type LocalSandboxOptions } from "../local";
import type { Sandbox } from "../types";
import { stopAllAppProcesses } from "./registry";
import { AppSupervisor, appStateFolder } from "./supervisor";
import { getThrough, processesWith, serverScript, waitForState, waitUntil, writeServer } from "./test-apps";

const MiB = 1024 * 1024;
let dataDir: string;
const opened: Sandbox[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "dyno-app-test-"));
});

afterAll(async () => {
  for (const sandbox of opened) await sandbox.destroy();
  await rm(dataDir, { recursive: true, force: true });
});

async function open(options: Partial<LocalSandboxOptions> = {}): Promise<Sandbox> {
  const sandbox = await openLocalSandbox({
    dataDir,
    projectId: randomUUID(),
    ...options,
    app: { backoffMs: [50, 100], maxCrashes: 3, ...options.app },
  });
  opened.push(sandbox);
  return sandbox;
}

describe("the app process", () => {
  it("starts the workspace's dev script, finds the port it listens on and is reachable through its socket", async () => {
    const sandbox = await open();
    const marker = `marker-${randomUUID()}`;
    await writeServer(sandbox, serverScript("one"));
    await sandbox.writeFile("package.json", JSON.stringify({ scripts: { dev: `node server.js ${marker}` } }));

    const status = await sandbox.app.start();
    expect(status).toMatchObject({ state: "running", command: "npm run dev", port: 5173, restarts: 0, reason: null });
    expect(await getThrough(await sandbox.app.endpoint(), "/hello")).toEqual({ status: 200, body: "one /hello" });

    // Already running with the same command: the same process.
    const before = await processesWith(marker);
    expect(before.length).toBeGreaterThan(0);
    expect(await sandbox.app.start()).toMatchObject({ state: "running", startedAt: status.startedAt });
    expect(await processesWith(marker)).toEqual(before);

    // Another LocalSandbox of the project (a later step) sees the same process.
    const again = await openLocalSandbox({ dataDir, projectId: sandbox.id });
    expect(await again.app.status()).toMatchObject({ state: "running", port: 5173 });

    const { lines } = await sandbox.app.logs();
    const texts = lines.map((line) => `${line.stream}: ${line.text}`);
    expect(texts).toContain("system: started `npm run dev`");
    expect(texts).toContain("stdout: listening");
    expect(texts).toContain("system: listening on port 5173");

    await sandbox.app.stop();
    expect(await sandbox.app.status()).toMatchObject({ state: "stopped", port: null });
    expect(await sandbox.app.endpoint()).toBeNull();
    await waitUntil(async () => (await processesWith(marker)).length === 0, "the app's processes are gone");
  });

  it("runs the command the agent set, restarts with a new one, and keeps it across a restart of Dyno", async () => {
    const sandbox = await open();
    await writeServer(sandbox, serverScript("a", { port: 4000, host: "127.0.0.1" }), "a.js");
    await writeServer(sandbox, serverScript("b", { port: 4001, host: "::1" }), "b.js");
    expect(await sandbox.app.start({ command: "node a.js" })).toMatchObject({ state: "running", port: 4000 });
    expect((await getThrough(await sandbox.app.endpoint())).body).toBe("a /");
    expect(await sandbox.app.restart({ command: "node b.js" })).toMatchObject({ state: "running", port: 4001 });
    expect((await getThrough(await sandbox.app.endpoint())).body).toBe("b /");

    const supervisor = sandbox.app as AppSupervisor;
    await supervisor.flush();
    // Another Dyno process (a replica, or the next one after a restart) sees the same app and its command.
    const fresh = new AppSupervisor({
      dataDir,
      projectId: sandbox.id,
      workspace: ((await sandbox.preview()) as { path: string }).path,
      home: path.join(dataDir, "homes", sandbox.id),
      isolation: "bubblewrap",
      limits: DEFAULT_SANDBOX_LIMITS,
      limitMode: "auto",
      hide: [],
    });
    expect(await fresh.status()).toMatchObject({ state: "running", command: "node b.js", port: 4001 });
    await sandbox.app.stop();
    // Nothing runs now; the command is kept for the next start.
    expect(await fresh.status()).toMatchObject({ state: "stopped", command: "node b.js" });
  });

  it("says why a start failed, without restarting behind the agent's back", async () => {
    const sandbox = await open();
    await sandbox.writeFile("package.json", JSON.stringify({ scripts: { dev: "node missing.js" } }));
    const status = await sandbox.app.start();
    expect(status).toMatchObject({ state: "crashed", nextRestartAt: null });
    expect(status.reason).toBe("exited with code 1 before it listened on a port");
    const { lines } = await sandbox.app.logs();
    expect(lines.some((line) => line.stream === "stderr" && /Cannot find module/.test(line.text))).toBe(true);
  });

  it("says there is nothing to run without a dev script or a command", async () => {
    const sandbox = await open();
    const status = await sandbox.app.start();
    expect(status).toMatchObject({ state: "stopped", command: null });
    expect(status.reason).toMatch(/nothing to run/);
  });

  it("restarts a crashed app with backoff, then gives up with the reason", async () => {
    const sandbox = await open();
    await writeServer(sandbox, serverScript("crashy", { exitAfterMs: 300 }));
    expect(await sandbox.app.start({ command: "node server.js" })).toMatchObject({ state: "running" });
    const gaveUp = await waitForState(
      sandbox,
      (s) => s.state === "crashed" && s.nextRestartAt === null,
      "gave up",
      30_000,
    );
    expect(gaveUp.reason).toBe("crashed 3 times in 10 min; not restarting (last: exited with code 1)");
    expect(gaveUp.restarts).toBe(2);
    const system = (await sandbox.app.logs()).lines.filter((l) => l.stream === "system").map((l) => l.text);
    expect(system).toContain("exited with code 1; restarting in 50 ms");
    expect(system).toContain("exited with code 1; restarting in 100 ms");
    expect(system).toContain("started `node server.js` (restart 1)");
    // A start on purpose begins again from zero.
    expect(await sandbox.app.start()).toMatchObject({ state: "running", restarts: 0 });
    await sandbox.app.stop();
  });

  it("stops when the project is idle, and starts again when asked", async () => {
    const sandbox = await open({ app: { idleTimeoutMs: 400 } });
    await writeServer(sandbox, serverScript("idle"));
    expect(await sandbox.app.start({ command: "node server.js" })).toMatchObject({ state: "running" });
    const stopped = await waitForState(sandbox, (s) => s.state === "stopped", "idle stop");
    expect(stopped.reason).toBe("idle for 400 ms");
    const system = (await sandbox.app.logs()).lines.filter((l) => l.stream === "system").map((l) => l.text);
    expect(system).toContain("stopped: idle for 400 ms");
    expect(await sandbox.app.start()).toMatchObject({ state: "running" });
    await sandbox.app.stop();
  });

  it("runs two projects' apps side by side; killing one's process leaves the other serving", async () => {
    const [one, two] = [await open(), await open()];
    const markers = [`marker-${randomUUID()}`, `marker-${randomUUID()}`];
    await writeServer(one, serverScript("one"));
    await writeServer(two, serverScript("two"));
    // Both on 5173: each sandbox has its own network namespace.
    expect(await one.app.start({ command: `node server.js ${markers[0]}` })).toMatchObject({ port: 5173 });
    expect(await two.app.start({ command: `node server.js ${markers[1]}` })).toMatchObject({ port: 5173 });
    expect((await getThrough(await one.app.endpoint())).body).toBe("one /");
    expect((await getThrough(await two.app.endpoint())).body).toBe("two /");

    const twoPids = await processesWith(markers[1]!);
    // The app's own server only (not bubblewrap around it): the app crashed.
    const servers = await processesWith(markers[0]!, "node server.js");
    expect(servers).toHaveLength(1);
    process.kill(servers[0]!, "SIGKILL");
    await waitForState(one, (s) => s.restarts >= 1 && s.state === "running", "one restarted");
    expect((await getThrough(await two.app.endpoint())).body).toBe("two /");
    expect(await processesWith(markers[1]!)).toEqual(twoPids);
    expect(await two.app.status()).toMatchObject({ state: "running", restarts: 0 });
    expect((await getThrough(await one.app.endpoint())).body).toBe("one /");
    await one.app.stop();
    await two.app.stop();
  });

  it("cannot reach its own socket file: the host makes it where the sandbox cannot see", async () => {
    const sandbox = await open();
    const endpoint = await (async () => {
      await writeServer(
        sandbox,
        [
          `const fs = require("fs");`,
          `const look = (p) => { try { return fs.readdirSync(p); } catch (e) { return e.code; } };`,
          `require("http").createServer((req, res) => res.end(JSON.stringify({ run: look("/run/dyno"), tmp: look("/tmp"), runtime: look("/opt/dyno-runtime") })))`,
          `  .listen(5173);`,
        ].join("\n"),
      );
      await sandbox.app.start({ command: "node server.js" });
      return sandbox.app.endpoint();
    })();
    expect(endpoint?.kind === "socket" && endpoint.path.startsWith(os.tmpdir())).toBe(true);
    const seen = JSON.parse((await getThrough(endpoint)).body) as Record<string, unknown>;
    // No socket folder inside; /tmp is the sandbox's own; only the launcher's code is bound, read-only.
    expect(seen).toEqual({ run: "ENOENT", tmp: [], runtime: expect.arrayContaining(["app-launch.mjs"]) });
    await sandbox.app.stop();
  });

  it("reaches the package registry and nothing else, through the project's egress proxy, and logs what was refused", async () => {
    const sandbox = await open({ egress: { mode: "registry", registryUrl: "https://registry.npmjs.org/" } });
    // /get?<url> answers curl's HTTP status for the URL (000 when it could not connect), as a dev server's fetch would.
    await writeServer(
      sandbox,
      [
        `const { execFile } = require("child_process");`,
        `require("http").createServer((req, res) => {`,
        `  const url = decodeURIComponent(req.url.slice("/get?".length));`,
        `  execFile("curl", ["-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", url], (error, stdout) => res.end(String(stdout || "000")));`,
        `}).listen(5173, "127.0.0.1", () => console.log("listening"));`,
      ].join("\n"),
    );
    expect(await sandbox.app.start({ command: "node server.js" })).toMatchObject({ state: "running" });
    const get = async (url: string) =>
      (await getThrough(await sandbox.app.endpoint(), `/get?${encodeURIComponent(url)}`)).body;

    expect(await get("https://registry.npmjs.org/is-number")).toBe("200");
    expect(await get("https://example.com/")).toBe("000");
    await waitUntil(async () => {
      const { lines } = await sandbox.app.logs();
      return lines.some(
        (line) =>
          line.stream === "system" &&
          line.text === "the sandbox refused a connection to example.com:443 (not on the allow-list)",
      );
    }, "the refusal in the app's log");
    await sandbox.app.stop();
  });

  it("stops on destroy and leaves nothing behind", async () => {
    const sandbox = await open();
    const marker = `marker-${randomUUID()}`;
    await writeServer(sandbox, serverScript("doomed"));
    expect(await sandbox.app.start({ command: `node server.js ${marker}` })).toMatchObject({ state: "running" });
    const endpoint = await sandbox.app.endpoint();
    await sandbox.destroy();
    expect(await processesWith(marker)).toEqual([]);
    expect(existsSync(appStateFolder(dataDir, sandbox.id))).toBe(false);
    expect(endpoint?.kind === "socket" && existsSync(endpoint.path)).toBe(false);
    expect(await sandbox.app.status()).toMatchObject({ state: "stopped", reason: "the project was deleted" });
  });

  it("stops every app when Dyno shuts down", async () => {
    const [one, two] = [await open(), await open()];
    for (const sandbox of [one, two]) {
      await writeServer(sandbox, serverScript("x"));
      await sandbox.app.start({ command: "node server.js" });
    }
    await stopAllAppProcesses();
    for (const sandbox of [one, two]) {
      expect(await sandbox.app.status()).toMatchObject({ state: "stopped", reason: "Dyno is shutting down" });
    }
  });
});

describe.each<LimitMode>(["auto", "rlimits"])("the app process under the project's limits (%s)", (limitMode) => {
  it("ends a memory hog in the app with the limit named, and another project keeps serving", async () => {
    const limits = { ...DEFAULT_SANDBOX_LIMITS, memoryBytes: 128 * MiB };
    const hog = await open({ limits, limitMode });
    const fine = await open({ limits, limitMode });
    await writeServer(hog, serverScript("hog", { hogAfterListen: true }));
    await writeServer(fine, serverScript("fine"));
    await fine.app.start({ command: "node server.js" });
    await hog.app.start({ command: "node server.js" });
    const crashed = await waitForState(hog, (s) => s.state === "crashed", "the hog is stopped");
    expect(crashed).toMatchObject({ reason: "memory limit (128 MiB) reached", nextRestartAt: null });
    const system = (await hog.app.logs()).lines.filter((l) => l.stream === "system").map((l) => l.text);
    expect(system.some((text) => text.startsWith("memory limit (128 MiB) reached"))).toBe(true);
    expect((await getThrough(await fine.app.endpoint())).body).toBe("fine /");
    // The project's commands still run (the hog is gone from its cgroup).
    expect(await hog.exec("echo ok")).toMatchObject({ exitCode: 0, stdout: "ok\n" });
    await fine.app.stop();
  });

  it("ends a fork bomb started by the app with the process limit named", async () => {
    const limits = { ...DEFAULT_SANDBOX_LIMITS, processes: 48 };
    const sandbox = await open({ limits, limitMode });
    const bomb = "f() { if [ $1 -gt 0 ]; then f $(($1 - 1)) & f $(($1 - 1)); wait; else sleep 20; fi; }; f 8";
    await writeServer(
      sandbox,
      `${serverScript("bomb")}\nsetTimeout(() => require("child_process").spawn("sh", ["-c", ${JSON.stringify(bomb)}]), 200);`,
    );
    await sandbox.app.start({ command: "node server.js" });
    const crashed = await waitForState(sandbox, (s) => s.state === "crashed", "the bomb is stopped");
    expect(crashed.reason).toBe("process limit (48 processes) reached");
  });

  it("holds the project's commands and its app process to one limit together", async () => {
    const limits = { ...DEFAULT_SANDBOX_LIMITS, memoryBytes: 512 * MiB };
    // 300 MB each, and Node itself (counted ~45 MB a process when polled, less by a cgroup, which shares pages):
    // either fits the limit alone with 130 MB or more to spare, both together are over it either way.
    const command = `node -e "globalThis.b = Buffer.alloc(300e6, 1); setTimeout(() => console.log('done'), 1500)"`;
    const alone = await open({ limits, limitMode });
    expect(await alone.exec(command, { timeoutMs: 20_000 })).toMatchObject({ exitCode: 0, stdout: "done\n" });

    const shared = await open({ limits, limitMode });
    await writeServer(shared, serverScript("holder", { holdBytes: 300e6 }));
    expect(await shared.app.start({ command: "node server.js" })).toMatchObject({ state: "running" });
    const result = await shared.exec(command, { timeoutMs: 20_000 });
    const app = await waitForState(shared, (s) => s.state !== "starting", "settled");
    // Whichever of the two was larger was ended, for the project's memory limit.
    const commandEnded = result.limit === "memory" && result.limitAmount === "512 MiB";
    const appEnded = app.state === "crashed" && app.reason === "memory limit (512 MiB) reached";
    expect(commandEnded || appEnded, JSON.stringify({ result, app })).toBe(true);
    await shared.app.stop();
  });
});
