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

/** Where the workspace appears inside the sandbox (also the command's cwd). */
export const SANDBOX_WORKDIR = "/workspace";
/** Where the project's home folder appears inside: npm's cache and tools' dotfiles land there, not in the workspace. */
export const SANDBOX_HOME = "/home/sandbox";

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

/**
 * The only environment a command sees, isolated or not: never the app's own.
 * npm is told not to check for updates, ask for funding or audit (there is no
 * network, and each would leave notices and files behind).
 */
export function minimalEnv(home: string, extraPath: string[] = []): Record<string, string> {
  return {
    PATH: [...extraPath, SYSTEM_PATH].join(":"),
    HOME: home,
    LANG: "C.UTF-8",
    TERM: "dumb",
    NO_UPDATE_NOTIFIER: "1",
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
  };
}

let systemMountsCache: { args: string[]; sources: string[] } | undefined;

/** Read-only binds (or symlinks, for merged /usr) of the system folders that exist here, and the host folders they show. */
function systemMounts(): { args: string[]; sources: string[] } {
  if (systemMountsCache) return systemMountsCache;
  const args: string[] = [];
  const sources: string[] = [];
  for (const folder of SYSTEM_FOLDERS) {
    const stat = lstatOrNull(folder);
    if (!stat) continue;
    if (stat.isSymbolicLink()) args.push("--symlink", readlinkSync(folder), folder);
    else if (stat.isDirectory()) {
      args.push("--ro-bind", folder, folder);
      sources.push(folder);
    }
  }
  for (const entry of ETC_ENTRIES) {
    args.push("--ro-bind-try", `/etc/${entry}`, `/etc/${entry}`);
    sources.push(`/etc/${entry}`);
  }
  const node = nodeInstall();
  if (node) {
    args.push("--ro-bind", node, node);
    sources.push(node);
  }
  systemMountsCache = { args, sources };
  return systemMountsCache;
}

const isInside = (child: string, parent: string) =>
  child === parent || child.startsWith(parent === "/" ? "/" : `${parent}/`);

/**
 * Empty tmpfs mounts over the hidden folders that a system bind would show
 * (an app checked out in /usr/src/app, its data in /opt/dyno), so commands
 * find nothing there. The Node install is bound again if a mask covered it.
 */
function maskArgs(hide: string[]): string[] {
  const { sources } = systemMounts();
  const masked: string[] = [];
  for (const folder of hide) {
    let real: string;
    try {
      real = realpathSync(folder);
    } catch {
      continue; // nothing there to show
    }
    // "/" (a service's default working directory) holds the system folders themselves: nothing of the app's is bound by it.
    if (real === "/" || !sources.some((source) => isInside(real, source))) continue;
    if (!masked.includes(real)) masked.push(real);
  }
  // Read-only too: a mask is no place to store anything.
  const args = masked.flatMap((folder) => ["--tmpfs", folder, "--remount-ro", folder]);
  const node = nodeInstall();
  if (node && masked.some((folder) => isInside(node, folder))) args.push("--ro-bind", node, node);
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

export interface BubblewrapOptions {
  /** Host folder bound read-write at SANDBOX_HOME (the command's HOME). Unset: HOME is an empty tmpfs. */
  home?: string;
  /** Host folders the command must not see (the app's checkout and data folder); masked where a system bind shows them. */
  hide?: string[];
  /** Size bound of the sandbox's /tmp, when this bwrap supports --size. */
  tmpBytes?: number;
  /** Runs before `sh -c command`, inside the sandbox (e.g. prlimit and its options, ending in "--"). */
  wrapper?: string[];
  /** More host folders to bind (the app launcher's code read-only, the project's socket folder read-write). */
  binds?: { host: string; sandbox: string; readOnly?: boolean }[];
  /** More environment variables (hints for the app process: PORT, HOST, BROWSER). */
  env?: Record<string, string>;
  /** What runs instead of `sh -c command` (after the wrapper): the app launcher with the command as its argument. */
  entry?: string[];
}

/** The bwrap arguments (everything after the bwrap binary) that run `sh -c command` in `workspace`. */
export function bubblewrapArgs(workspace: string, command: string, options: BubblewrapOptions = {}): string[] {
  const node = nodeInstall();
  const env = { ...minimalEnv(SANDBOX_HOME, node ? [path.join(node, "bin")] : []), ...options.env };
  const binds = (options.binds ?? []).flatMap((bind) => [
    bind.readOnly ? "--ro-bind" : "--bind",
    bind.host,
    bind.sandbox,
  ]);
  return [
    // Own user, pid, ipc, uts, cgroup and network namespaces: no network at all, only a private loopback.
    "--unshare-all",
    "--die-with-parent",
    // setsid: the command cannot reach the app's terminal (TIOCSTI).
    "--new-session",
    // When the app runs as root, bwrap keeps root's capabilities unless told otherwise (remounting /usr read-write, say).
    "--cap-drop",
    "ALL",
    ...systemMounts().args,
    ...maskArgs(options.hide ?? []),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    ...(options.tmpBytes ? ["--size", String(options.tmpBytes)] : []),
    "--tmpfs",
    "/tmp",
    ...(options.home ? ["--bind", options.home, SANDBOX_HOME] : ["--tmpfs", SANDBOX_HOME]),
    "--bind",
    workspace,
    SANDBOX_WORKDIR,
    ...binds,
    "--chdir",
    SANDBOX_WORKDIR,
    // The sandbox's own root is a tmpfs; read-only, so a write to /etc/x fails instead of vanishing silently.
    "--remount-ro",
    "/",
    "--clearenv",
    ...Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]),
    "--",
    ...(options.wrapper ?? []),
    ...(options.entry ?? ["sh", "-c", command]),
  ];
}

/** The Node binary as the sandbox sees it (system folders and the Node install are bound at their host paths). */
export function sandboxNodeBinary(): string {
  try {
    return realpathSync(process.execPath);
  } catch {
    return process.execPath;
  }
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
  /** Whether this bwrap can bound the size of the sandbox's /tmp (`--size`, in newer bubblewrap releases). */
  tmpSize?: boolean;
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
    const help = await runToEnd(binary, ["--help"], 15_000, "stdout");
    const tmpSize = /^\s*--size\b/m.test(help.output);
    const args = bubblewrapArgs(workspace, "true", tmpSize ? { tmpBytes: 1024 * 1024 } : {});
    const { code, output: stderr } = await runToEnd(binary, args, 15_000);
    if (code === 0) return { available: true, bwrapPath: binary, tmpSize };
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

function runToEnd(
  file: string,
  args: string[],
  timeoutMs: number,
  stream: "stdout" | "stderr" = "stderr",
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const stdio =
      stream === "stdout" ? (["ignore", "pipe", "ignore"] as const) : (["ignore", "ignore", "pipe"] as const);
    const child = spawn(file, args, { stdio: [...stdio], env: minimalEnv("/") as NodeJS.ProcessEnv });
    let output = "";
    child[stream]!.setEncoding("utf8").on("data", (text: string) => {
      if (output.length < 20_000) output += text;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: output.trim() });
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
