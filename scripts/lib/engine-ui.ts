/**
 * Builds the Inngest dev server's dashboard (the Vite app in ui/apps/dev-server-ui of the engine's Go module)
 * inside the temporary copy of the module tree, so `go build` embeds it (`//go:embed all:static` in
 * pkg/devserver/ui.go). Best effort: any failure is returned as a reason and the engine is built without it.
 * Nothing here touches the repository: Inngest's source is SSPL and is only ever patched in the temp copy.
 * See docs/decisions/024-engine-dashboard.md.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** Bumped when what goes into the dashboard changes, so cached engines are rebuilt (part of the cache key). */
export const ENGINE_UI_REVISION = "ui1";

/** Where the embedded dashboard serves its local copy of Monaco (under /assets/: the engine sends MIME types there). */
export const MONACO_LOCAL_PATH = "/assets/monaco/vs";

/** What DYNO_ENGINE_UI asks for: "0" skip, "1" required (fail instead of building without), else best effort. */
export type DashboardWish = "skip" | "required" | "best-effort";

export function dashboardWish(env: Record<string, string | undefined> = process.env): DashboardWish {
  const value = env.DYNO_ENGINE_UI?.trim();
  if (value === "0") return "skip";
  if (value === "1") return "required";
  return "best-effort";
}

/** Whether a built engine embeds the dashboard; the reason when it does not. */
export type DashboardStatus = { included: true } | { included: false; reason: string; skipped: boolean };

/** The marker file beside a built engine binary that records whether its dashboard is in. */
export function dashboardMarkerPath(bin: string): string {
  return `${bin}.dashboard.json`;
}

export function writeDashboardMarker(bin: string, status: DashboardStatus) {
  writeFileSync(dashboardMarkerPath(bin), `${JSON.stringify(status, null, 2)}\n`);
}

/** undefined: not known (an engine Dyno did not build, e.g. INNGEST_BIN or inngest-cli). */
export function readDashboardMarker(bin: string): DashboardStatus | undefined {
  try {
    const parsed = JSON.parse(readFileSync(dashboardMarkerPath(bin), "utf8")) as Partial<{
      included: boolean;
      reason: string;
      skipped: boolean;
    }>;
    if (parsed.included === true) return { included: true };
    if (parsed.included === false)
      return { included: false, reason: String(parsed.reason ?? "unknown"), skipped: parsed.skipped === true };
  } catch {
    // No marker or not ours: unknown.
  }
  return undefined;
}

/** "with dashboard" / "without dashboard (reason)" / "dashboard unknown", for the startup lines. */
export function describeDashboard(status: DashboardStatus | undefined): string {
  if (!status) return "dashboard unknown";
  return status.included ? "with dashboard" : `without dashboard (${status.reason})`;
}

type Log = (line: string) => void;

/**
 * Builds the dashboard in `<moduleCopy>/ui` and copies it into `<moduleCopy>/pkg/devserver/static/client`.
 * `work` is a scratch folder (the pnpm store goes there: ~1.1 GB, removed with it). Resolves to the status;
 * never throws.
 */
export async function buildDashboardInto(
  moduleCopy: string,
  { work, log, npm = process.env.NPM_BIN || "npm" }: { work: string; log: Log; npm?: string },
): Promise<DashboardStatus> {
  const started = Date.now();
  try {
    const ui = path.join(moduleCopy, "ui");
    const app = path.join(ui, "apps/dev-server-ui");
    if (!existsSync(path.join(ui, "pnpm-lock.yaml")) || !existsSync(path.join(app, "package.json"))) {
      throw new Error("the engine's module has no ui/apps/dev-server-ui with ui/pnpm-lock.yaml");
    }
    pointMonacoAtLocalCopy(app);
    dropRemoteFonts(ui);

    // pnpm 10 through npm (no global install). The UI's package.json pins pnpm@10.18.2 in packageManager;
    // switching to it makes pnpm download and verify another copy, which the registry here refuses
    // (no registry signature), so run with the pnpm npm just fetched. Scripts stay off: nothing to run for a
    // build, and install scripts are how packages reach outside.
    const pnpm = (args: string[]) => [
      "exec",
      "--yes",
      "--package=pnpm@10",
      "--",
      "pnpm",
      "--config.manage-package-manager-versions=false",
      ...args,
    ];
    // CI=true: pnpm and vite print plain lines, no prompts. NODE_ENV from the caller would change what installs.
    const { NODE_ENV: _callersMode, ...callerEnv } = process.env;
    const env = { ...callerEnv, CI: "true", DO_NOT_TRACK: "1", npm_config_update_notifier: "false" };
    log("dashboard: installing its packages from the npm registry (pnpm, frozen lockfile)…");
    await run(
      npm,
      pnpm([
        "install",
        "--frozen-lockfile",
        "--ignore-scripts",
        "--filter",
        "@inngest/dev-server-ui...",
        "--store-dir",
        path.join(work, "pnpm-store"),
      ]),
      { cwd: ui, env, timeoutMs: 20 * 60_000, label: "pnpm install" },
    );
    log("dashboard: building (vite)…");
    // Not `pnpm build`: its `tsc --noEmit` step fails on a filtered install, and type checks are Inngest's job.
    await run(npm, pnpm(["exec", "vite", "build", "--mode=production"]), {
      cwd: app,
      env,
      timeoutMs: 20 * 60_000,
      label: "vite build",
    });

    const client = path.join(app, "dist/client");
    if (!existsSync(path.join(client, "_shell.html"))) throw new Error("the UI build wrote no dist/client/_shell.html");
    const target = path.join(moduleCopy, "pkg/devserver/static/client");
    mkdirSync(target, { recursive: true });
    cpSync(client, target, { recursive: true });
    copyMonaco(app, path.join(target, MONACO_LOCAL_PATH.slice(1)));
    log(`dashboard: built in ${Math.round((Date.now() - started) / 1000)}s`);
    return { included: true };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { included: false, reason: `the dashboard build failed: ${reason}`, skipped: false };
  }
}

/**
 * @monaco-editor/react loads Monaco from cdn.jsdelivr.net unless told otherwise, which leaves every payload
 * view blank offline. Configure its loader in the root route (runs before any editor mounts, and is safe in the
 * build's prerender, unlike importing monaco-editor itself) to load the copy this engine serves.
 */
function pointMonacoAtLocalCopy(app: string) {
  const root = path.join(app, "src/routes/__root.tsx");
  const source = readFileSync(root, "utf8");
  const anchor = "import StoreProvider from '@/components/StoreProvider';\n";
  if (!source.includes(anchor))
    throw new Error(`${path.relative(app, root)} changed: cannot point Monaco at a local copy`);
  const config =
    "import { loader as dynoMonacoLoader } from '@monaco-editor/react';\n\n" +
    "// Patched by Dyno's engine build: Monaco from this server, not a CDN, so payload views work offline.\n" +
    "// An absolute URL: Monaco's workers start from a blob and cannot resolve a path. (No window in the prerender.)\n" +
    "dynoMonacoLoader.config({\n" +
    `  paths: { vs: (typeof window === 'undefined' ? '' : window.location.origin) + '${MONACO_LOCAL_PATH}' },\n` +
    "});\n";
  writeFileSync(root, source.replace(anchor, anchor + config));
}

/**
 * The dashboard's fonts (Lineto's Circular, licensed to www.inngest.com) load from fonts-cdn.inngest.com on every
 * page view. Offline that is 16 failed requests, online a call home; the Tailwind stacks fall back to the system's
 * sans and mono fonts, so the stylesheet is emptied (it must stay: the root route imports it).
 */
function dropRemoteFonts(ui: string) {
  const fonts = path.join(ui, "packages/components/src/AppRoot/fonts.css");
  if (!existsSync(fonts)) throw new Error("packages/components/src/AppRoot/fonts.css is missing");
  writeFileSync(
    fonts,
    "/* Emptied by Dyno's engine build: no web fonts from fonts-cdn.inngest.com; system fonts. */\n",
  );
}

/**
 * Monaco's AMD build (what the loader fetches) without what the dashboard never uses: the translations (it is in
 * English) and the TypeScript, CSS and HTML language workers (7 MB; its editors are JSON, SQL and its own CEL
 * and shell grammars; every language keeps its syntax colouring from basic-languages).
 */
function copyMonaco(app: string, target: string) {
  const vs = path.join(app, "node_modules/monaco-editor/min/vs");
  if (!existsSync(path.join(vs, "loader.js"))) throw new Error("monaco-editor/min/vs is missing after the install");
  const unused = new Set(["language/typescript", "language/css", "language/html"]);
  cpSync(vs, target, {
    recursive: true,
    filter: (source) => {
      const relative = path.relative(vs, source).split(path.sep).join("/");
      return !path.basename(source).startsWith("nls.messages.") && !unused.has(relative);
    },
  });
}

/** Runs a command, keeping the end of its output for the error; kills it after timeoutMs. */
function run(
  cmd: string,
  args: string[],
  {
    cwd,
    env,
    timeoutMs,
    label,
  }: { cwd: string; env: Record<string, string | undefined>; timeoutMs: number; label: string },
): Promise<void> {
  return new Promise((resolve, reject) => {
    // NODE_ENV is left out on purpose (see the caller); the project's ProcessEnv type insists on one.
    const child = spawn(cmd, args, { cwd, env: env as NodeJS.ProcessEnv, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString("utf8")).slice(-4000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`${label}: ${cmd} could not start: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const how = signal ? `was killed (${signal}${signal === "SIGKILL" ? ", timed out" : ""})` : `exited with ${code}`;
      const last = tail.trim().split("\n").slice(-12).join("\n");
      reject(new Error(`${label} ${how}:\n${last}`));
    });
  });
}
