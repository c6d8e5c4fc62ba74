/**
 * Command isolation for the local provider: each command runs under
 * bubblewrap (bwrap) with no network, no capabilities, a read-only view of
 * the system folders it needs, a private /tmp, and the workspace as the only
 * writable host folder. None of the app's environment (DATABASE_URL, model
 * and Inngest keys) is passed in.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, lstatSync, mkdtempSync, readlinkSync, realpathSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** Where the workspace appears inside the sandbox (also the command's cwd and HOME). */
export const SANDBOX_WORKDIR = "/workspace";

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Folders holding sh, coreutils, node and npm; on merged-/usr systems most are symlinks into /usr. */
const SYSTEM_FOLDERS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"];

/** The /etc entries programs need to start (dynamic linker, users, TLS roots, name service config). */
const ETC_ENTRIES = [
  "alternatives",
  "ld.so.cache",
  "ld.so.conf",
  "ld.so.conf.d",
  "passwd",
  "group",
  "nsswitch.conf",
  "hosts",
  "resolv.conf",
  "localtime",
  "ssl",
  "ca-certificates",
];

/** The only environment a command sees, isolated or not: never the app's own. */
export function minimalEnv(home: string, extraPath: string[] = []): Record<string, string> {
  return { PATH: [...extraPath, SYSTEM_PATH].join(":"), HOME: home, LANG: "C.UTF-8", TERM: "dumb" };
}

let systemMountsCache: string[] | undefined;

/** Read-only binds (or symlinks, for merged /usr) of the system folders that exist here. */
function systemMounts(): string[] {
  if (systemMountsCache) return systemMountsCache;
  const args: string[] = [];
  for (const folder of SYSTEM_FOLDERS) {
    const stat = lstatOrNull(folder);
    if (!stat) continue;
    if (stat.isSymbolicLink()) args.push("--symlink", readlinkSync(folder), folder);
    else if (stat.isDirectory()) args.push("--ro-bind", folder, folder);
  }
  for (const entry of ETC_ENTRIES) args.push("--ro-bind-try", `/etc/${entry}`, `/etc/${entry}`);
  const node = nodeInstall();
  if (node) args.push("--ro-bind", node, node);
  systemMountsCache = args;
  return args;
}

/**
 * The Node.js install folder when it lives outside the system folders (nvm,
 * /opt/node), so `node` and `npm` work inside the sandbox too. Only a folder
 * laid out like a Node distribution (bin/node, lib/node_modules/npm) is
 * bound, never some broader folder that happens to hold a node binary.
 */
let nodeInstallCache: { folder: string | undefined } | undefined;

function nodeInstall(): string | undefined {
  nodeInstallCache ??= { folder: findNodeInstall() };
  return nodeInstallCache.folder;
}

function findNodeInstall(): string | undefined {
  let executable: string;
  try {
    executable = realpathSync(process.execPath);
  } catch {
    return undefined;
  }
  const prefix = path.dirname(path.dirname(executable));
  if (["/usr", "/"].includes(prefix) || SYSTEM_FOLDERS.some((folder) => executable.startsWith(`${folder}/`))) {
    return undefined;
  }
  const layout = [path.join(prefix, "bin", "node"), path.join(prefix, "lib", "node_modules", "npm")];
  return layout.every((file) => existsSync(file)) ? prefix : undefined;
}

function lstatOrNull(file: string) {
  try {
    return lstatSync(file);
  } catch {
    return null;
  }
}

/** The bwrap arguments (everything after the bwrap binary) that run `sh -c command` in `workspace`. */
export function bubblewrapArgs(workspace: string, command: string): string[] {
  const node = nodeInstall();
  const env = minimalEnv(SANDBOX_WORKDIR, node ? [path.join(node, "bin")] : []);
  return [
    // Own user, pid, ipc, uts, cgroup and network namespaces: no network at all, only a private loopback.
    "--unshare-all",
    "--die-with-parent",
    // setsid: the command cannot reach the app's terminal (TIOCSTI).
    "--new-session",
    // When the app runs as root, bwrap keeps root's capabilities unless told otherwise (remounting /usr read-write, say).
    "--cap-drop",
    "ALL",
    ...systemMounts(),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--bind",
    workspace,
    SANDBOX_WORKDIR,
    "--chdir",
    SANDBOX_WORKDIR,
    // The sandbox's own root is a tmpfs; read-only, so a write to /etc/x fails instead of vanishing silently.
    "--remount-ro",
    "/",
    "--clearenv",
    ...Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]),
    "--",
    "sh",
    "-c",
    command,
  ];
}

/** The first `bwrap` on PATH, if any. */
export function findBwrap(searchPath = process.env.PATH ?? ""): string | undefined {
  for (const folder of searchPath.split(path.delimiter)) {
    if (!folder) continue;
    const candidate = path.join(folder, "bwrap");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface IsolationCheck {
  available: boolean;
  /** Why isolation is unavailable (the probe's own error when it ran). */
  reason?: string;
  /** The bwrap binary that was probed. */
  bwrapPath?: string;
}

const checks = new Map<string, Promise<IsolationCheck>>();

/**
 * Whether commands can run under bubblewrap here, probed once per bwrap path
 * by running `true` with the very arguments real commands get. The app logs
 * this at startup; the local provider's exec refuses to run when it fails.
 */
export function checkLocalIsolation(options: { bwrapPath?: string } = {}): Promise<IsolationCheck> {
  const key = options.bwrapPath ?? "(PATH)";
  let check = checks.get(key);
  if (!check) {
    check = probe(options.bwrapPath);
    checks.set(key, check);
  }
  return check;
}

async function probe(bwrapPath: string | undefined): Promise<IsolationCheck> {
  if (process.platform !== "linux") {
    return { available: false, reason: `bubblewrap needs Linux, and this machine runs ${process.platform}` };
  }
  const binary = bwrapPath ?? findBwrap();
  if (!binary) return { available: false, reason: "bwrap was not found on PATH" };
  if (!existsSync(binary)) return { available: false, reason: `${binary} does not exist`, bwrapPath: binary };
  const workspace = mkdtempSync(path.join(os.tmpdir(), "dyno-bwrap-probe-"));
  try {
    const { code, stderr } = await runToEnd(binary, bubblewrapArgs(workspace, "true"), 15_000);
    if (code === 0) return { available: true, bwrapPath: binary };
    return {
      available: false,
      bwrapPath: binary,
      reason: `probe \`${binary} --unshare-all … true\` failed (${code === null ? "killed" : `exit ${code}`})${stderr ? `: ${stderr}` : ""}`,
    };
  } catch (error) {
    return { available: false, bwrapPath: binary, reason: `could not run ${binary}: ${(error as Error).message}` };
  } finally {
    rmSync(workspace, { recursive: true, force: true });
  }
}

function runToEnd(file: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], env: minimalEnv("/") as NodeJS.ProcessEnv });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      if (stderr.length < 2000) stderr += text;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: stderr.trim() });
    });
  });
}

/** The SandboxUnavailableError message for a failed isolation check. */
export function isolationUnavailableMessage(reason: string | undefined): string {
  return (
    `Command isolation is unavailable: ${reason ?? "unknown reason"}. ` +
    "Install bubblewrap (the Debian/Ubuntu package `bubblewrap`: apt-get install bubblewrap) so the agent's commands " +
    "run without network or access outside the project's workspace, or set LOCAL_SANDBOX_ISOLATION=none to run them " +
    "unisolated on this machine at your own risk."
  );
}
