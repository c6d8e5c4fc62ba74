/**
 * The local provider (the default): the project's workspace is a folder on
 * this machine, `<dataDir>/workspaces/<projectId>`, and commands run in it
 * under bubblewrap (bubblewrap.ts). File operations run in this process,
 * behind the path checks in paths.ts, never inside the sandbox.
 */
import { constants } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, realpath, rm, stat, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { appSupervisor, destroyAppSupervisor } from "./app/registry";
import type { AppSupervisorSettings } from "./app/supervisor";
import {
  bubblewrapArgs,
  checkLocalIsolation,
  isolationUnavailableMessage,
  minimalEnv,
  SANDBOX_HOME,
} from "./bubblewrap";
import { appCheckout } from "./checkout";
import { detectLimitSupport, prepareConfinement, type LimitMode, type LimitSupport } from "./confine";
import { closeProjectEgressProxy, distinctRefusals, sandboxEgress, type EgressSettings } from "./egress";
import { abortedResult, execLimits, positive, refuseCommand, refusedResult } from "./exec-common";
import { fileReadOf } from "./file-content";
import { DEFAULT_SANDBOX_LIMITS, limitAmount, type SandboxLimits } from "./limits";
import { compareNames, resolveWorkspacePath } from "./paths";
import { runProcess } from "./process";
import {
  DEFAULT_LIST_MAX_ENTRIES,
  DEFAULT_READ_MAX_BYTES,
  LIST_SKIPPED_FOLDERS,
  MAX_WRITE_BYTES,
  SandboxFileError,
  SandboxPathError,
  SandboxUnavailableError,
  type AppProcess,
  type ExecOptions,
  type ExecResult,
  type FileList,
  type FileRead,
  type FileWrite,
  type PreviewLocation,
  type Sandbox,
} from "./types";

export type LocalIsolation = "bubblewrap" | "none";

export interface LocalSandboxOptions {
  dataDir: string;
  projectId: string;
  /** Default "bubblewrap". "none" runs commands directly on this machine (still with a minimal environment). */
  isolation?: LocalIsolation;
  /** The bwrap binary; default the first `bwrap` on PATH. */
  bwrapPath?: string;
  /** Resource limits for each command. Default DEFAULT_SANDBOX_LIMITS. */
  limits?: SandboxLimits;
  /** "auto" (default) uses cgroups where the host allows; "rlimits" forces the fallback without them. */
  limitMode?: LimitMode;
  /**
   * Host folders commands must not see, besides the app's data folder and working directory. Default: the app's
   * checkout (the folder holding this code's package.json).
   */
  hide?: string[];
  /** The app process (its dev server): timeouts, log bounds, restart backoff. Defaults in sandbox/app/supervisor.ts. */
  app?: Pick<
    AppSupervisorSettings,
    "idleTimeoutMs" | "startTimeoutMs" | "log" | "backoffMs" | "maxCrashes" | "crashWindowMs"
  >;
  /**
   * Network for commands under bubblewrap. Default off (no network at all). "registry": only the package registry
   * and the allow-list, through this process's egress proxy for the project (sandbox/egress). Without bubblewrap
   * commands have the host's network and this does not apply.
   */
  egress?: EgressSettings;
}

/** A UUID, or any similar name that is safe as a single folder name. */
const SAFE_PROJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

// O_NONBLOCK: opening a FIFO someone left in the workspace must fail or return at once, not hang the agent.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WRITE_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export function localWorkspacePath(dataDir: string, projectId: string): string {
  if (!SAFE_PROJECT_ID.test(projectId)) {
    throw new SandboxPathError(
      `Project id ${JSON.stringify(projectId)} is not a safe workspace folder name: expected a UUID (letters, digits, "-", "_")`,
    );
  }
  return path.join(path.resolve(dataDir), "workspaces", projectId);
}

/** The project's HOME for commands, outside the workspace so caches and dotfiles never show up among its files. */
export function localHomePath(dataDir: string, projectId: string): string {
  return path.join(path.dirname(path.dirname(localWorkspacePath(dataDir, projectId))), "homes", projectId);
}

export { appCheckout } from "./checkout";

/** Opens (creating if needed) the project's workspace. Reattaching is opening the same folder again. */
export async function openLocalSandbox(options: LocalSandboxOptions): Promise<Sandbox> {
  const folder = localWorkspacePath(options.dataDir, options.projectId);
  await mkdir(folder, { recursive: true, mode: 0o755 });
  const root = await realpath(folder);
  // Beside the workspace (so under the same real data folder), made by the first command.
  const home = path.join(path.dirname(path.dirname(root)), "homes", options.projectId);
  const settings: LocalSettings = {
    isolation: options.isolation ?? "bubblewrap",
    bwrapPath: options.bwrapPath,
    limits: options.limits ?? DEFAULT_SANDBOX_LIMITS,
    limitMode: options.limitMode ?? "auto",
    hide: [...(options.hide ?? [appCheckout()]), process.cwd(), path.resolve(options.dataDir)],
    dataDir: options.dataDir,
    egress: options.egress ?? { mode: "off" },
  };
  // The app process gets the same isolation, limits, hidden folders and egress as the project's commands.
  const app: AppSupervisorSettings = {
    ...options.app,
    projectId: options.projectId,
    workspace: root,
    home,
    ...settings,
  };
  return new LocalSandbox(options.projectId, root, home, settings, app);
}

const limitSupport = new Map<LimitMode, Promise<LimitSupport>>();

/** How limits are enforced on this host, detected once per mode. */
export function localLimitSupport(mode: LimitMode = "auto"): Promise<LimitSupport> {
  let support = limitSupport.get(mode);
  if (!support) {
    support = detectLimitSupport(mode);
    limitSupport.set(mode, support);
  }
  return support;
}

interface LocalSettings {
  isolation: LocalIsolation;
  bwrapPath: string | undefined;
  limits: SandboxLimits;
  limitMode: LimitMode;
  hide: string[];
  dataDir: string;
  egress: EgressSettings;
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

class LocalSandbox implements Sandbox {
  readonly provider = "local" as const;
  /** Shared by every LocalSandbox of the project in this Dyno process (sandbox/app/registry.ts). */
  readonly app: AppProcess;
  private destroyed = false;
  /** Running commands, killed by destroy(). */
  private readonly running = new Set<AbortController>();

  constructor(
    readonly id: string,
    private readonly root: string,
    private readonly home: string,
    private readonly settings: LocalSettings,
    private readonly appSettings: AppSupervisorSettings,
  ) {
    this.app = appSupervisor(appSettings);
  }

  async writeFile(filePath: string, content: string): Promise<FileWrite> {
    this.ensureUsable();
    if (typeof content !== "string") throw new SandboxFileError(`Content for ${JSON.stringify(filePath)} must be text`);
    const bytes = Buffer.byteLength(content, "utf8");
    if (bytes > MAX_WRITE_BYTES) {
      throw new SandboxFileError(
        `Content for ${JSON.stringify(filePath)} is ${bytes} bytes; a file write takes at most ${MAX_WRITE_BYTES} bytes (1 MiB)`,
      );
    }
    const { relative, real } = await resolveWorkspacePath(this.root, filePath);
    if (relative === "")
      throw new SandboxFileError(`${JSON.stringify(filePath)} is the workspace folder itself, not a file`);
    const existing = await lstat(real).catch(() => null);
    if (existing?.isDirectory()) throw new SandboxFileError(`${JSON.stringify(relative)} is a folder, not a file`);
    if (existing && !existing.isFile()) throw new SandboxFileError(`${JSON.stringify(relative)} is not a regular file`);
    try {
      await mkdir(path.dirname(real), { recursive: true, mode: 0o755 });
    } catch (error) {
      if (errorCode(error) === "ENOTDIR" || errorCode(error) === "EEXIST") {
        throw new SandboxFileError(`Cannot write ${JSON.stringify(relative)}: part of its folder path is a file`);
      }
      throw error;
    }
    let handle: FileHandle;
    try {
      handle = await open(real, WRITE_FLAGS, 0o644);
    } catch (error) {
      throw this.fileError(error, relative, "write");
    }
    try {
      await handle.writeFile(content, "utf8");
    } finally {
      await handle.close();
    }
    return { path: relative, bytes, created: !existing };
  }

  async readFile(filePath: string, options: { maxBytes?: number } = {}): Promise<FileRead> {
    this.ensureUsable();
    const maxBytes = positive("maxBytes", options.maxBytes ?? DEFAULT_READ_MAX_BYTES);
    const read = await readWorkspaceBytes(this.root, filePath, maxBytes);
    return fileReadOf(read.path, read.data, read.bytes);
  }

  async listFiles(folderPath = "", options: { maxEntries?: number } = {}): Promise<FileList> {
    this.ensureUsable();
    const maxEntries = positive("maxEntries", options.maxEntries ?? DEFAULT_LIST_MAX_ENTRIES);
    const { relative, real } = await resolveWorkspacePath(this.root, folderPath);
    const info = await stat(real).catch(() => null);
    if (!info) throw new SandboxFileError(`Folder ${JSON.stringify(relative || folderPath)} does not exist`);
    if (!info.isDirectory()) throw new SandboxFileError(`${JSON.stringify(relative)} is a file, not a folder`);

    const files: string[] = [];
    // Depth first with each folder's names sorted gives tree order (see compareListedPaths) and lets the
    // walk stop as soon as one entry more than asked for is found.
    const walk = async (folder: string, prefix: string): Promise<boolean> => {
      const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
      entries.sort((a, b) => compareNames(a.name, b.name));
      for (const entry of entries) {
        const listed = prefix ? `${prefix}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (LIST_SKIPPED_FOLDERS.has(entry.name)) continue;
          if (await walk(path.join(folder, entry.name), listed)) return true;
        } else {
          // Files and symlinks (never followed: a link may point outside, or loop).
          files.push(listed);
          if (files.length > maxEntries) return true;
        }
      }
      return false;
    };
    const truncated = await walk(real, relative);
    return { files: files.slice(0, maxEntries), truncated };
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    this.ensureUsable();
    const startedAt = performance.now();
    const { timeoutMs, maxOutputBytes } = execLimits(options);
    if (options.signal?.aborted) return abortedResult(startedAt);
    const refusal = refuseCommand(command);
    if (refusal) return refusedResult(refusal, startedAt);

    const { isolation, limits } = this.settings;
    const check =
      isolation === "bubblewrap" ? await checkLocalIsolation({ bwrapPath: this.settings.bwrapPath }) : undefined;
    if (check && (!check.available || !check.bwrapPath)) {
      throw new SandboxUnavailableError(isolationUnavailableMessage(check.reason));
    }
    await mkdir(this.home, { recursive: true, mode: 0o755 });
    const confinement = await prepareConfinement({
      support: await localLimitSupport(this.settings.limitMode),
      limits,
      isolated: Boolean(check),
      diskFolders: [this.root, this.home],
      projectId: this.id,
    });
    const egress =
      check?.bwrapPath && this.settings.egress.mode === "registry"
        ? await sandboxEgress(this.settings.dataDir, this.id, this.settings.egress)
        : undefined;
    const refusalsFrom = egress?.proxy.seq ?? 0;
    const stop = new AbortController();
    this.running.add(stop);
    try {
      let file: string;
      let args: string[];
      let env: Record<string, string>;
      if (check?.bwrapPath) {
        file = check.bwrapPath;
        args = bubblewrapArgs(this.root, command, {
          home: this.home,
          hide: this.settings.hide,
          tmpBytes: check.tmpSize ? Math.min(limits.diskBytes, limits.memoryBytes) : undefined,
          wrapper: confinement.inner,
          ...(egress && { binds: egress.binds, env: egress.env, entry: egress.launch(command) }),
        });
        env = minimalEnv(SANDBOX_HOME);
      } else {
        const [wrapper, ...wrapperArgs] = confinement.inner;
        file = wrapper ?? "/bin/sh";
        args = [...wrapperArgs, ...(wrapper ? ["/bin/sh"] : []), "-c", command];
        env = minimalEnv(this.home);
      }
      const outer = confinement.outer(file, args);
      const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
      const result = await runProcess(outer.file, outer.args, {
        cwd: this.root,
        env,
        timeoutMs,
        maxOutputBytes,
        signal,
        guard: confinement.guard,
      });
      // Another command of the same project running at the same time may add its refusals here too: they share the
      // project's proxy, and a refusal cannot tell which command's connection it was.
      const refused = egress ? distinctRefusals(egress.proxy.refusalsSince(refusalsFrom)) : [];
      return {
        ...result,
        ...(result.limit && { limitAmount: limitAmount(result.limit, limits) }),
        ...(refused.length && { egressRefused: refused }),
      };
    } finally {
      this.running.delete(stop);
      await confinement.dispose();
    }
  }

  async preview(): Promise<PreviewLocation> {
    this.ensureUsable();
    return { kind: "directory", path: this.root };
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const stop of this.running) stop.abort();
    // The app first: it must not write into the folders being removed.
    await destroyAppSupervisor(this.appSettings);
    await closeProjectEgressProxy(this.settings.dataDir, this.id);
    await removeFolder(this.root);
    await removeFolder(this.home);
  }

  private ensureUsable(): void {
    if (this.destroyed) throw new SandboxUnavailableError(`Sandbox ${this.id} has been destroyed`);
  }

  private fileError(error: unknown, relative: string, action: "read" | "write"): Error {
    return fileError(error, relative, action);
  }
}

/** The error to throw for a failed open of a checked path. */
function fileError(error: unknown, relative: string, action: "read" | "write"): Error {
  const name = JSON.stringify(relative);
  switch (errorCode(error)) {
    case "ENOENT":
      return new SandboxFileError(`File ${name} does not exist`);
    case "EISDIR":
      return new SandboxFileError(`${name} is a folder, not a file`);
    case "ENOTDIR":
      return new SandboxFileError(`Cannot ${action} ${name}: part of its folder path is a file`);
    case "ELOOP":
      // O_NOFOLLOW met a link that appeared after the path was checked.
      return new SandboxPathError(
        `Path ${name} became a symbolic link while it was being opened; refusing to follow it`,
      );
    case "ENXIO":
      return new SandboxFileError(`${name} is not a regular file`);
    case "EACCES":
    case "EPERM":
      return new SandboxFileError(`Permission denied: cannot ${action} ${name}`);
    default:
      return error instanceof Error ? error : new Error(String(error));
  }
}

/** A workspace file's first maxBytes bytes, exactly, after the same path checks as every file tool. */
export async function readWorkspaceBytes(
  root: string,
  filePath: string,
  maxBytes: number,
): Promise<{ path: string; data: Buffer; bytes: number; truncated: boolean }> {
  const { relative, real } = await resolveWorkspacePath(root, filePath);
  if (relative === "") {
    throw new SandboxFileError(
      `${JSON.stringify(filePath)} is the workspace folder itself; list it instead of reading it`,
    );
  }
  let handle: FileHandle;
  try {
    handle = await open(real, READ_FLAGS);
  } catch (error) {
    throw fileError(error, relative, "read");
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory())
      throw new SandboxFileError(`${JSON.stringify(relative)} is a folder, not a file; list it instead`);
    if (!info.isFile()) throw new SandboxFileError(`${JSON.stringify(relative)} is not a regular file`);
    const buffer = Buffer.alloc(Math.min(info.size, maxBytes));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { path: relative, data: buffer.subarray(0, filled), bytes: info.size, truncated: info.size > filled };
  } finally {
    await handle.close();
  }
}

/**
 * rm -rf that also copes with folders a command made unreadable (chmod 000),
 * which would stop a non-root owner from emptying them.
 */
async function removeFolder(folder: string): Promise<void> {
  try {
    await rm(folder, { recursive: true, force: true });
  } catch (error) {
    if (errorCode(error) !== "EACCES" && errorCode(error) !== "EPERM") throw error;
    await makeOwnerWritable(folder);
    await rm(folder, { recursive: true, force: true });
  }
}

async function makeOwnerWritable(folder: string): Promise<void> {
  await chmod(folder, 0o700).catch(() => {});
  const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (entry.isDirectory()) await makeOwnerWritable(path.join(folder, entry.name));
  }
}
