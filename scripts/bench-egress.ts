/**
 * npm run bench:egress — what the egress proxy costs an install.
 *
 * The same fixed packages (react, react-dom, vite, pinned) are installed, with a fresh npm cache each time, side by
 * side in this run, rotating which goes first: in a bubblewrap sandbox whose only way out is the project's egress
 * proxy (the local sandbox with SANDBOX_EGRESS=registry), and directly on the host with the same npm and no
 * sandbox. The sandbox's CPU limit is raised to this machine's cores so the ratio measures the sandbox and its
 * proxy, not the default 1-core cap. A third arm runs the host's npm through the same proxy and forwarder (no
 * sandbox), to tell the proxy's share from the sandbox's own (bwrap, the limits' polling). Prints each time, the
 * medians and the ratios (target for sandbox+proxy / host: <= 1.15).
 *
 * Options: --reps N (default 5).
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo, Server } from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { checkLocalIsolation, minimalEnv } from "../sandbox/bubblewrap";
import { closeEgressProxies, createEgressPolicy, hostRegistryUrl, startEgressProxy } from "../sandbox/egress";
import { DEFAULT_SANDBOX_LIMITS } from "../sandbox/limits";
import { openLocalSandbox } from "../sandbox/local";

const { values: args } = parseArgs({ options: { reps: { type: "string", default: "5" } } });
const REPS = Math.max(1, Number(args.reps) || 5);
const PACKAGES = ["react@19.0.0", "react-dom@19.0.0", "vite@6.3.5"];
const INSTALL = `npm install --no-audit --no-fund --loglevel=error ${PACKAGES.join(" ")}`;
const PACKAGE_JSON = JSON.stringify({ name: "bench-egress", version: "1.0.0", private: true });

const root = mkdtempSync(path.join(os.tmpdir(), "dyno-bench-egress-"));
const limits = {
  ...DEFAULT_SANDBOX_LIMITS,
  cpuCores: os.cpus().length,
  memoryBytes: 4 * 1024 ** 3,
  diskBytes: 4 * 1024 ** 3,
};

async function inSandbox(): Promise<number> {
  const sandbox = await openLocalSandbox({
    dataDir: path.join(root, "data"),
    projectId: randomUUID(),
    limits,
    egress: { mode: "registry" },
  });
  try {
    await sandbox.writeFile("package.json", PACKAGE_JSON);
    // The sandbox is new, so its home (and npm's cache there) is empty.
    const result = await sandbox.exec(INSTALL, { timeoutMs: 300_000, maxOutputBytes: 64 * 1024 });
    if (result.exitCode !== 0) throw new Error(`sandbox install failed: ${result.stderr || result.stdout}`);
    if (result.egressRefused?.length) throw new Error(`refused: ${JSON.stringify(result.egressRefused)}`);
    return result.durationMs;
  } finally {
    await sandbox.destroy();
  }
}

/** The host's npm through an egress proxy and the sandbox's own forwarder, on a free port: the proxy's cost alone. */
let hostProxyPort: number | undefined;

async function onHost(viaProxy = false): Promise<number> {
  const folder = path.join(root, `host-${randomUUID()}`);
  const home = path.join(folder, "home");
  mkdirSync(home, { recursive: true });
  writeFileSync(path.join(folder, "package.json"), PACKAGE_JSON);
  const started = performance.now();
  try {
    await new Promise<void>((resolve, reject) => {
      // The host's own npm and network, with the same clean environment (and so an empty cache in the fresh HOME).
      const env: Record<string, string> = { ...minimalEnv(home), PATH: process.env.PATH ?? "/usr/bin:/bin" };
      if (viaProxy) {
        env.npm_config_https_proxy = `http://127.0.0.1:${hostProxyPort}`;
        env.npm_config_proxy = env.npm_config_https_proxy;
      }
      const child = spawn("sh", ["-c", INSTALL], {
        cwd: folder,
        env: env as NodeJS.ProcessEnv,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("error", reject);
      child.on("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`host install failed (${code}): ${stderr}`)),
      );
    });
    return Math.round(performance.now() - started);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

async function main() {
  const check = await checkLocalIsolation();
  if (!check.available) throw new Error(`bubblewrap is needed: ${check.reason}`);
  console.log(`npm install ${PACKAGES.join(" ")}, fresh cache each time, ${REPS} reps (rotating order)`);
  const proxy = await startEgressProxy({
    socketPath: path.join(root, "host-egress.sock"),
    policy: createEgressPolicy(await hostRegistryUrl()),
  });
  // The very forwarder the sandbox runs (plain .mjs), here on the host's loopback.
  const forwarderModule = "../sandbox/runtime/egress-forwarder.mjs";
  const { startEgressForwarder } = (await import(forwarderModule)) as {
    startEgressForwarder(options: { socketPath: string; port?: number }): Promise<Server>;
  };
  const forwarder = await startEgressForwarder({ socketPath: proxy.socketPath, port: 0 });
  hostProxyPort = (forwarder.address() as AddressInfo).port;
  try {
    // One untimed round each: the first bwrap start and the proxy's start are not what is measured.
    await inSandbox();
    await onHost();
    await onHost(true);
    const times = { sandbox: [] as number[], host: [] as number[], hostProxy: [] as number[] };
    const arms = ["sandbox", "host", "hostProxy"] as const;
    for (let rep = 0; rep < REPS; rep++) {
      for (let i = 0; i < arms.length; i++) {
        const arm = arms[(rep + i) % arms.length]!;
        times[arm].push(arm === "sandbox" ? await inSandbox() : await onHost(arm === "hostProxy"));
      }
      console.log(
        `  rep ${rep + 1}: sandbox+proxy ${times.sandbox.at(-1)} ms, host ${times.host.at(-1)} ms, ` +
          `host+proxy ${times.hostProxy.at(-1)} ms`,
      );
    }
    if (proxy.seq) throw new Error(`the host arm's proxy refused: ${JSON.stringify(proxy.refusalsSince(0))}`);
    const sandboxMedian = median(times.sandbox);
    const hostMedian = median(times.host);
    const hostProxyMedian = median(times.hostProxy);
    console.log(`median sandbox+proxy: ${sandboxMedian} ms`);
    console.log(`median host direct:   ${hostMedian} ms`);
    console.log(`median host+proxy:    ${hostProxyMedian} ms (no sandbox)`);
    console.log(`ratio sandbox+proxy / host: ${(sandboxMedian / hostMedian).toFixed(3)} (target <= 1.15)`);
    console.log(`ratio host+proxy / host:    ${(hostProxyMedian / hostMedian).toFixed(3)} (the proxy's share)`);
  } finally {
    forwarder.close();
    await proxy.close();
  }
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(async () => {
    await closeEgressProxies();
    rmSync(root, { recursive: true, force: true });
  });
