/**
 * npm run bench:egress — what the egress proxy costs an install.
 *
 * The same fixed packages (react, react-dom, vite, pinned) are installed, with a fresh npm cache each time, two
 * ways side by side in this run, alternating which goes first: in a bubblewrap sandbox whose only way out is the
 * project's egress proxy (the local sandbox with SANDBOX_EGRESS=registry), and directly on the host with the same
 * npm and no sandbox. The sandbox's CPU limit is raised to this machine's cores so the ratio measures the sandbox
 * and its proxy, not the default 1-core cap. Prints each time, the medians and the ratio (target <= 1.15).
 *
 * Options: --reps N (default 5).
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { checkLocalIsolation, minimalEnv } from "../sandbox/bubblewrap";
import { closeEgressProxies } from "../sandbox/egress";
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

async function onHost(): Promise<number> {
  const folder = path.join(root, `host-${randomUUID()}`);
  const home = path.join(folder, "home");
  mkdirSync(home, { recursive: true });
  writeFileSync(path.join(folder, "package.json"), PACKAGE_JSON);
  const started = performance.now();
  try {
    await new Promise<void>((resolve, reject) => {
      // The host's own npm and network, with the same clean environment (and so an empty cache in the fresh HOME).
      const env: Record<string, string> = { ...minimalEnv(home), PATH: process.env.PATH ?? "/usr/bin:/bin" };
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
  console.log(`npm install ${PACKAGES.join(" ")}, fresh cache each time, ${REPS} reps (alternating order)`);
  // One untimed round each: the first bwrap start and the proxy's start are not what is measured.
  await inSandbox();
  await onHost();
  const sandboxTimes: number[] = [];
  const hostTimes: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? (["sandbox", "host"] as const) : (["host", "sandbox"] as const);
    for (const which of order) {
      if (which === "sandbox") sandboxTimes.push(await inSandbox());
      else hostTimes.push(await onHost());
    }
    console.log(`  rep ${rep + 1}: sandbox+proxy ${sandboxTimes.at(-1)} ms, host ${hostTimes.at(-1)} ms`);
  }
  const sandboxMedian = median(sandboxTimes);
  const hostMedian = median(hostTimes);
  console.log(`median sandbox+proxy: ${sandboxMedian} ms`);
  console.log(`median host direct:   ${hostMedian} ms`);
  console.log(`ratio: ${(sandboxMedian / hostMedian).toFixed(3)} (target <= 1.15)`);
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
