/**
 * Finds or builds the Inngest engine (the `inngest` Go binary) without
 * downloading anything from GitHub. Order:
 *   1. INNGEST_BIN
 *   2. a working `inngest-cli` install (on PATH or in node_modules/.bin)
 *   3. a cached build: $XDG_CACHE_HOME/dyno/inngest-v<version>-<ui revision>/inngest
 *   4. a build from the Go module source at the pinned tag, through the Go
 *      module proxy, with the dev server's dashboard built from the UI source
 *      in the same module (best effort, see engine-ui.ts), cached for the next start.
 * See docs/decisions/001-inngest-engine-from-go-source.md and 024-engine-dashboard.md for why.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  buildDashboardInto,
  dashboardWish,
  ENGINE_UI_REVISION,
  readDashboardMarker,
  writeDashboardMarker,
  type DashboardStatus,
} from "./engine-ui";

/** The pinned engine: first tag that supports the SDK's checkpointing. */
export const INNGEST_ENGINE_VERSION = "1.13.5";
const MODULE = "github.com/inngest/inngest";

export type EngineSource = "INNGEST_BIN" | "inngest-cli" | "cache" | "built";

export interface Engine {
  bin: string;
  source: EngineSource;
  version: string;
  /** Whether the dev server's dashboard is embedded; undefined for engines Dyno did not build. */
  dashboard: DashboardStatus | undefined;
}

type Log = (line: string) => void;
const defaultLog: Log = (line) => console.error(`[engine] ${line}`);

/** The folder Dyno's engine builds share (the builds, and their temporary folders while they run). */
export function dynoCacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "dyno");
}

/** Where the engine build is cached. The UI revision is in the key so builds from before the dashboard are redone. */
export function engineCacheDir(version = INNGEST_ENGINE_VERSION): string {
  return path.join(dynoCacheRoot(), `inngest-v${version}-${ENGINE_UI_REVISION}`);
}

/** Runs `<bin> version`; returns what it printed, or undefined if it does not run. */
export function engineVersion(bin: string): string | undefined {
  const result = spawnSync(bin, ["version"], { encoding: "utf8", timeout: 15_000, env: engineEnv() });
  if (result.status !== 0) return undefined;
  // Builds without a commit hash print "<version>-".
  return result.stdout.trim().split("\n").pop()?.trim().replace(/-$/, "") || undefined;
}

/** Environment for every engine process: no telemetry. */
export function engineEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, DO_NOT_TRACK: "1" };
}

export async function findOrBuildEngine({ log = defaultLog }: { log?: Log } = {}): Promise<Engine> {
  const explicit = process.env.INNGEST_BIN;
  if (explicit) {
    const version = engineVersion(explicit);
    if (!version) throw new Error(`INNGEST_BIN=${explicit} does not run (tried \`${explicit} version\`)`);
    return { bin: explicit, source: "INNGEST_BIN", version, dashboard: readDashboardMarker(explicit) };
  }

  for (const candidate of ["inngest-cli", path.resolve("node_modules/.bin/inngest-cli")]) {
    const version = engineVersion(candidate);
    // The released CLI embeds the dashboard.
    if (version) return { bin: candidate, source: "inngest-cli", version, dashboard: { included: true } };
  }

  const cached = path.join(engineCacheDir(), "inngest");
  const wish = dashboardWish();
  if (existsSync(cached)) {
    const version = engineVersion(cached);
    const dashboard = readDashboardMarker(cached);
    const rebuild = !version
      ? "does not run"
      : dashboard?.included === false && (dashboard.skipped ? wish !== "skip" : wish === "required")
        ? `was built ${describeMissing(dashboard)} and DYNO_ENGINE_UI ${wish === "required" ? "is 1" : "is not 0"}`
        : undefined;
    if (!rebuild) return { bin: cached, source: "cache", version: version!, dashboard };
    log(`cached engine at ${cached} ${rebuild}; rebuilding`);
  }

  const dashboard = await buildEngine(cached, wish, log);
  const version = engineVersion(cached);
  if (!version) throw new Error(`built engine at ${cached} does not run`);
  return { bin: cached, source: "built", version, dashboard };
}

function describeMissing(status: DashboardStatus & { included: false }): string {
  return status.skipped ? "without the dashboard (skipped)" : "without the dashboard (its build failed)";
}

async function buildEngine(target: string, wish: ReturnType<typeof dashboardWish>, log: Log): Promise<DashboardStatus> {
  removeAbandonedBuilds(dynoCacheRoot(), log);
  const go = process.env.GO_BIN || "go";
  const goVersion = spawnSync(go, ["version"], { encoding: "utf8" });
  if (goVersion.status !== 0) {
    throw new Error(
      "No Inngest engine found and no Go toolchain to build one.\n" +
        "Set INNGEST_BIN to an `inngest` binary, install inngest-cli, or install Go >= 1.24.",
    );
  }
  const started = Date.now();
  log(
    `building Inngest engine v${INNGEST_ENGINE_VERSION} from Go module source (once; cached in ${path.dirname(target)})`,
  );
  log(`using ${goVersion.stdout.trim()}`);

  // In the cache folder, not /tmp: with the dashboard it holds ~1.1 GB (the pnpm store), often more than a tmpfs.
  mkdirSync(dynoCacheRoot(), { recursive: true });
  const work = mkdtempSync(path.join(dynoCacheRoot(), `build-${process.pid}-`));
  try {
    log(`downloading ${MODULE}@v${INNGEST_ENGINE_VERSION} through the Go module proxy`);
    const download = spawnSync(go, ["mod", "download", "-json", `${MODULE}@v${INNGEST_ENGINE_VERSION}`], {
      cwd: work,
      encoding: "utf8",
      env: { ...process.env, GO111MODULE: "on" },
    });
    const info = safeJson(download.stdout) as { Dir?: string; Error?: string } | undefined;
    if (download.status !== 0 || !info?.Dir) {
      throw new Error(`go mod download failed: ${info?.Error ?? download.stderr.trim()}`);
    }

    // `go install module@version` refuses modules whose go.mod has replace
    // directives, so build inside a writable copy of the module tree.
    const src = path.join(work, "src");
    cpSync(info.Dir, src, { recursive: true });
    makeDirsWritable(src);
    // Tags after v1.13.0 go:embed a git submodule (the docs website) that
    // module zips leave out. An empty docs folder only empties the dev
    // server's MCP docs search.
    const docs = path.join(src, "internal/embeddocs/website/pages/docs");
    mkdirSync(docs, { recursive: true });
    writeFileSync(path.join(docs, "README.md"), "Docs are not bundled in this build.\n");

    let dashboard: DashboardStatus;
    if (wish === "skip") {
      dashboard = { included: false, reason: "skipped: DYNO_ENGINE_UI=0", skipped: true };
      log("dashboard: skipped (DYNO_ENGINE_UI=0)");
    } else {
      dashboard = await buildDashboardInto(src, { work, log });
      if (!dashboard.included) {
        if (wish === "required") throw new Error(`${dashboard.reason}\n(DYNO_ENGINE_UI=1 requires the dashboard)`);
        log(`WARNING: building the engine without its dashboard: ${dashboard.reason}`);
        dashboard = { ...dashboard, reason: dashboard.reason.split("\n")[0] ?? dashboard.reason };
      }
    }

    mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial-${process.pid}`;
    const ldflags = `-s -w -X ${MODULE}/pkg/inngest/version.Version=${INNGEST_ENGINE_VERSION}`;
    log("compiling (a few minutes on a cold Go cache)…");
    await runWithProgress(go, ["build", "-v", "-trimpath", `-ldflags=${ldflags}`, "-o", partial, "./cmd"], {
      cwd: src,
      env: engineEnv({ ...process.env, GOFLAGS: "-buildvcs=false", CGO_ENABLED: process.env.CGO_ENABLED ?? "1" }),
      log,
    });
    writeDashboardMarker(target, dashboard);
    renameSync(partial, target);
    log(`built ${target} in ${Math.round((Date.now() - started) / 1000)}s`);
    return dashboard;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Temp folders of builds whose process is gone (killed mid-build): ~1.1 GB each with the dashboard's store. */
function removeAbandonedBuilds(root: string, log: Log) {
  if (!existsSync(root)) return;
  for (const entry of readdirSync(root)) {
    const pid = /^build-(\d+)-/.exec(entry)?.[1];
    if (!pid || processAlive(Number(pid))) continue;
    log(`removing an abandoned engine build folder: ${path.join(root, entry)}`);
    rmSync(path.join(root, entry), { recursive: true, force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, someone else's.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function makeDirsWritable(dir: string) {
  chmodSync(dir, statSync(dir).mode | 0o700);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) makeDirsWritable(path.join(dir, entry.name));
  }
}

/** Runs a build, printing a progress line every 15 s instead of every package. */
function runWithProgress(
  cmd: string,
  args: string[],
  { cwd, env, log }: { cwd: string; env: NodeJS.ProcessEnv; log: Log },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "inherit", "pipe"] });
    let downloaded = 0;
    let compiled = 0;
    const errors: string[] = [];
    const started = Date.now();
    let buffer = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line.startsWith("go: downloading")) downloaded++;
        else if (/^[\w.-]+(\/[\w.~-]+)*$/.test(line.trim())) compiled++;
        else if (line.trim()) errors.push(line);
      }
    });
    const timer = setInterval(() => {
      const secs = Math.round((Date.now() - started) / 1000);
      log(`…${secs}s: ${downloaded} modules downloaded, ${compiled} packages compiled`);
    }, 15_000);
    child.on("error", (error) => {
      clearInterval(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearInterval(timer);
      if (code === 0) resolve();
      else reject(new Error(`go build exited with ${code}:\n${errors.slice(-40).join("\n")}`));
    });
  });
}
