/**
 * The egress policy end to end: real commands under bubblewrap, the real egress proxy, the real npm registry.
 * Host services (Postgres, Redis, an HTTP server standing for the app, the engine and the preview server) must stay
 * out of reach, whichever way a command tries.
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkLocalIsolation } from "./bubblewrap";
import { closeEgressProxies, egressSocketPath } from "./egress";
import { openLocalSandbox } from "./local";
import { projectRuntimeDir } from "./runtime-dir";
import { SandboxUnavailableError, type Sandbox } from "./types";

let dataDir: string;
let sandbox: Sandbox;
let projectId: string;
let hostServer: http.Server;
let hostPort: number;
let hostHits = 0;

/** A non-loopback address of this machine, if it has one (a service bound to 0.0.0.0 answers there too). */
const outsideAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((info) => info && !info.internal && info.family === "IPv4")?.address;

beforeAll(async () => {
  const check = await checkLocalIsolation();
  if (!check.available) throw new Error(`these tests need bubblewrap: ${check.reason}`);
  dataDir = await mkdtemp(path.join(os.tmpdir(), "dyno-egress-test-"));
  hostServer = http.createServer((_req, res) => {
    hostHits++;
    res.end("host service");
  });
  await new Promise<void>((resolve) => hostServer.listen(0, "0.0.0.0", resolve));
  hostPort = (hostServer.address() as AddressInfo).port;
  projectId = randomUUID();
  sandbox = await openLocalSandbox({ dataDir, projectId, egress: { mode: "registry" } });
});

afterAll(async () => {
  await sandbox?.destroy();
  await closeEgressProxies();
  await new Promise((resolve) => hostServer?.close(resolve));
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** A node script run inside the sandbox (written into the workspace first). */
async function runScript(name: string, source: string) {
  await sandbox.writeFile(name, source);
  return sandbox.exec(`node ${name}`, { timeoutMs: 60_000 });
}

describe("sandbox egress (bubblewrap, registry mode)", () => {
  it("installs a package from the registry", async () => {
    await sandbox.writeFile("package.json", JSON.stringify({ name: "egress-test", version: "1.0.0", private: true }));
    const result = await sandbox.exec("npm install is-number@7.0.0 --no-audit --no-fund", { timeoutMs: 120_000 });
    expect(result.stderr).not.toMatch(/ERR!/);
    expect(result.exitCode).toBe(0);
    expect(result.egressRefused).toBeUndefined();
    const installed = await sandbox.readFile("node_modules/is-number/package.json");
    expect(JSON.parse(installed.content)).toMatchObject({ name: "is-number", version: "7.0.0" });
    // Nothing of the host's npm setup came in, and the app's own environment neither.
    const env = await sandbox.exec("env");
    expect(env.stdout).toMatch(/^npm_config_registry=https?:\/\//m);
    expect(env.stdout).not.toMatch(/DATABASE_URL|_authToken|INNGEST/);
  });

  it("refuses and records https to a host not on the allow-list (curl)", async () => {
    const result = await sandbox.exec("curl -sS -m 10 https://example.com/ -o /dev/null");
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/403/);
    expect(result.egressRefused).toMatchObject([{ host: "example.com", port: 443, reason: "not on the allow-list" }]);
  });

  it("refuses plain http through the proxy, and records it", async () => {
    const result = await sandbox.exec("curl -sS -m 10 http://example.com/");
    expect(result.stdout).toMatch(/refused example.com:80 \(not on the allow-list\)/);
    expect(result.egressRefused).toMatchObject([{ host: "example.com", port: 80 }]);
  });

  it("gives node's fetch (which ignores proxy variables) no way out at all", async () => {
    const result = await runScript(
      "fetch.mjs",
      "try { await fetch('https://example.com/'); console.log('REACHED'); } catch (e) { console.log('failed', e.cause?.code ?? e.message); }",
    );
    expect(result.stdout).toMatch(/^failed (ENOTFOUND|EAI_AGAIN)/);
  });

  it("cannot reach Postgres, Redis or host HTTP services, directly or through the proxy", async () => {
    hostHits = 0;
    const targets = [
      ["127.0.0.1", 5432],
      ["127.0.0.1", 6379],
      ["127.0.0.1", hostPort],
      ...(outsideAddress ? [[outsideAddress, hostPort]] : []),
    ];
    const direct = await runScript(
      "direct.mjs",
      `import net from "node:net";
       for (const [host, port] of ${JSON.stringify(targets)}) {
         const outcome = await new Promise((resolve) => {
           const socket = net.connect({ host, port, timeout: 3000 });
           socket.on("connect", () => { socket.destroy(); resolve("CONNECTED"); });
           socket.on("timeout", () => { socket.destroy(); resolve("timeout"); });
           socket.on("error", (error) => resolve(error.code));
         });
         console.log(host + ":" + port + " " + outcome);
       }`,
    );
    expect(direct.stdout).not.toMatch(/CONNECTED/);
    expect(direct.stdout.trim().split("\n")).toHaveLength(targets.length);
    const viaProxy = await sandbox.exec(
      targets.map(([host, port]) => `curl -sS -m 5 --noproxy '' http://${host}:${port}/`).join("; "),
    );
    expect(viaProxy.stdout).not.toMatch(/host service/);
    expect(viaProxy.egressRefused?.map((r) => `${r.host}:${r.port}`)).toEqual(targets.map(([h, p]) => `${h}:${p}`));
    expect(hostHits).toBe(0);
  });

  it("has no raw TCP or UDP to the outside and no DNS of its own", async () => {
    const result = await runScript(
      "raw.mjs",
      `import dgram from "node:dgram";
       import dns from "node:dns/promises";
       import net from "node:net";
       const tcp = await new Promise((resolve) => {
         const socket = net.connect({ host: "104.16.0.35", port: 443, timeout: 3000 });
         socket.on("connect", () => resolve("CONNECTED"));
         socket.on("timeout", () => resolve("timeout"));
         socket.on("error", (error) => resolve(error.code));
       });
       const udp = await new Promise((resolve) => {
         const socket = dgram.createSocket("udp4");
         socket.send("x", 53, "8.8.8.8", (error) => { socket.close(); resolve(error ? error.code : "SENT"); });
       });
       const lookup = await dns.lookup("registry.npmjs.org").then(() => "RESOLVED", (error) => error.code);
       console.log(JSON.stringify({ tcp, udp, lookup }));`,
    );
    const outcome = JSON.parse(result.stdout) as Record<string, string>;
    expect(outcome.tcp).toBe("ENETUNREACH");
    expect(outcome.udp).toBe("ENETUNREACH");
    expect(outcome.lookup).toMatch(/ENOTFOUND|EAI_AGAIN|ECONNREFUSED/);
  });

  it("refuses hostile CONNECTs sent straight to the forwarder, and records each", async () => {
    const tries = [
      "CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: registry.npmjs.org:443",
      "CONNECT 104.16.0.35:443 HTTP/1.1\r\nHost: registry.npmjs.org",
      "CONNECT registry.npmjs.org:80 HTTP/1.1\r\nHost: registry.npmjs.org:443",
      "CONNECT localhost:6379 HTTP/1.1\r\nHost: localhost",
      "GET http://127.0.0.1:" + hostPort + "/ HTTP/1.1\r\nHost: registry.npmjs.org",
    ];
    const result = await runScript(
      "hostile.mjs",
      `import net from "node:net";
       for (const head of ${JSON.stringify(tries)}) {
         const answer = await new Promise((resolve) => {
           const socket = net.connect(3128, "127.0.0.1", () => socket.write(head + "\\r\\n\\r\\n"));
           let text = "";
           socket.on("data", (chunk) => (text += chunk));
           socket.on("close", () => resolve(text.split("\\r\\n")[0]));
           socket.on("error", () => resolve("error"));
         });
         console.log(answer);
       }`,
    );
    expect(result.stdout.trim().split("\n")).toEqual(tries.map(() => "HTTP/1.1 403 Forbidden"));
    expect(result.egressRefused?.map((r) => `${r.host}:${r.port}`)).toEqual([
      "127.0.0.1:5432",
      "104.16.0.35:443",
      "registry.npmjs.org:80",
      "localhost:6379",
      `127.0.0.1:${hostPort}`,
    ]);
  });

  it("cannot reach the proxy's socket folder or any other project's socket", async () => {
    const other = egressSocketPath(dataDir, randomUUID());
    const result = await sandbox.exec(
      `ls -a /run/dyno; ls ${path.dirname(egressSocketPath(dataDir, projectId))} 2>&1; echo done`,
    );
    expect(result.stdout).toMatch(/^\.\n\.\.\nbin\negress\.sock\n/);
    expect(result.stdout).toMatch(/No such file or directory/);
    expect(existsSync(other)).toBe(false);
  });

  it("reports the operator's registry token only when one is configured", async () => {
    const withToken = await openLocalSandbox({
      dataDir,
      projectId,
      egress: { mode: "registry", registryToken: "operator-token-123" },
    });
    const result = await withToken.exec("cat /run/dyno/npmrc; npm config get registry");
    // npm reads it (as its global config) and keeps it to itself.
    const listed = await withToken.exec("npm config list");
    expect(listed.stdout).toMatch(/^\/\/registry\.npmjs\.org\/:_authToken = \(protected\)$/m);
    expect(result.stdout).toBe("//registry.npmjs.org/:_authToken=operator-token-123\nhttps://registry.npmjs.org/\n");
    const without = await sandbox.exec("ls /run/dyno/npmrc 2>&1; env | grep -c globalconfig");
    expect(without.stdout).toMatch(/No such file[\s\S]*^0$/m);
  });

  it("runs `npm create vite@latest` non-interactively", async () => {
    const result = await sandbox.exec("npm create -y vite@latest app -- --template react-ts --no-interactive", {
      timeoutMs: 180_000,
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const created = JSON.parse((await sandbox.readFile("app/package.json")).content) as { devDependencies?: object };
    expect(created.devDependencies).toHaveProperty("vite");
    expect(result.egressRefused).toBeUndefined();
  });
});

describe("sandbox egress that cannot start", () => {
  it("refuses to run the command with a clear error instead of running it without its network", async () => {
    const id = randomUUID();
    const blocked = await openLocalSandbox({ dataDir, projectId: id, egress: { mode: "registry" } });
    // A file where the project's socket folder should be: the proxy cannot listen there.
    const runtime = projectRuntimeDir(dataDir, id);
    await mkdir(path.dirname(runtime), { recursive: true });
    await writeFile(runtime, "");
    try {
      await expect(blocked.exec("echo never")).rejects.toThrow(
        /The sandbox's network \(its egress proxy\) could not start: .*Set SANDBOX_EGRESS=off/,
      );
      await expect(blocked.exec("echo never")).rejects.toBeInstanceOf(SandboxUnavailableError);
    } finally {
      await rm(runtime, { force: true });
      await blocked.destroy();
    }
  });
});

describe("sandbox egress off", () => {
  it("gives commands no network at all, as before", async () => {
    const off = await openLocalSandbox({ dataDir, projectId: randomUUID(), egress: { mode: "off" } });
    try {
      await writeFile(path.join(dataDir, "unused"), "");
      const result = await off.exec(
        "env | grep -ci proxy; npm view is-number version --fetch-retries=0 2>&1 | tail -3",
      );
      expect(result.stdout).toMatch(/^0\n/);
      expect(result.stdout).toMatch(/ENOTFOUND|EAI_AGAIN/);
      expect(result.egressRefused).toBeUndefined();
    } finally {
      await off.destroy();
    }
  });
});
