/**
 * The Modal provider: the project's workspace is /workspace inside a Modal
 * sandbox (a remote container), reached through Modal's JS SDK (`modal`
 * 0.11). The sandbox is the isolation boundary, so paths get the lexical
 * check only: a symlink inside the box can only lead elsewhere in the box.
 *
 * The SDK is imported on first use, so apps on the local provider never load it.
 */
import { randomUUID } from "node:crypto";
import { posix } from "node:path";
import type { ContainerProcess, ModalClient, Sandbox as ModalBox } from "modal";
import { abortedResult, elapsed, execLimits, positive, refuseCommand, refusedResult } from "./exec-common";
import { fileReadOf } from "./file-content";
import { MODAL_APP_PORT, ModalAppProcess, type AppBoxTransport, type ModalAppOptions } from "./modal-app";
import { modalBoxEnv, modalNetworkParams, type ModalEgressPolicy } from "./modal-egress";
import {
  execArgv,
  IS_FOLDER,
  killArgv,
  listFilesArgv,
  MISSING,
  NOT_FOLDER_OR_FILE,
  readHeadArgv,
} from "./modal-scripts";
import { CappedOutput } from "./output";
import { compareListedPaths, MAX_PATH_CHARS, normalizeWorkspacePath } from "./paths";
import {
  DEFAULT_LIST_MAX_ENTRIES,
  DEFAULT_READ_MAX_BYTES,
  MAX_WRITE_BYTES,
  SandboxFileError,
  SandboxUnavailableError,
  type ExecOptions,
  type ExecResult,
  type FileList,
  type FileRead,
  type FileWrite,
  type PreviewLocation,
  type Sandbox,
} from "./types";

type ModalSdk = typeof import("modal");

export const MODAL_WORKDIR = "/workspace";

export interface ModalSandboxOptions {
  projectId: string;
  /** The id stored on the project row; reattached while that sandbox still runs. */
  sandboxId?: string | null;
  tokenId?: string;
  tokenSecret?: string;
  /** The Modal app the sandboxes belong to (created if missing). Default "dyno". */
  appName?: string;
  /**
   * Registry image; needs sh, coreutils and setsid (util-linux: any Debian/Ubuntu-based image), and node for the app
   * process's supervisor. Default node:20-slim.
   */
  image?: string;
  /**
   * The one container port exposed through an encrypted tunnel: the app process's (told to the command as PORT)
   * and the preview's. Default 3000. A reattached sandbox keeps the ports it was created with.
   */
  appPort?: number;
  /** Outbound network of a new sandbox (modal-egress.ts). Default { mode: "registry" }: the npm registry only. */
  egress?: ModalEgressPolicy;
  /** The app process's bounds (start timeout, idle stop, log size, restart backoff). */
  app?: Omit<ModalAppOptions, "workdir" | "appPort">;
  /** Maximum lifetime of a new sandbox (Modal's limit is 24 h). Default 24 h. */
  lifetimeMs?: number;
  /** A new sandbox ends after this long with no activity. Default 30 min. */
  idleTimeoutMs?: number;
}

const DEFAULT_APP_NAME = "dyno";
const DEFAULT_IMAGE = "node:20-slim";
const DEFAULT_LIFETIME_MS = 24 * 60 * 60 * 1000;
const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60 * 1000;
/** How long a kill command, or the output still in flight after an exit or kill, may take. */
const SETTLE_MS = 2_000;
const KILL_COMMAND_TIMEOUT_MS = 10_000;

let sdk: Promise<ModalSdk> | undefined;
const clients = new Map<string, ModalClient>();

async function modalClient(tokenId: string, tokenSecret: string): Promise<{ modal: ModalSdk; client: ModalClient }> {
  sdk ??= import("modal");
  const modal = await sdk;
  const key = `${tokenId}:${tokenSecret}`;
  let client = clients.get(key);
  if (!client) {
    // One client per token for the life of the process: it holds gRPC channels that are costly to reopen.
    client = new modal.ModalClient({ tokenId, tokenSecret });
    clients.set(key, client);
  }
  return { modal, client };
}

/**
 * Reattaches to `sandboxId` when that sandbox is still running, otherwise
 * creates a new one (whose id becomes `id`; a new sandbox starts with an empty
 * workspace: Modal sandboxes keep no files after they end).
 */
export async function openModalSandbox(options: ModalSandboxOptions): Promise<Sandbox> {
  const { tokenId, tokenSecret } = options;
  if (!tokenId || !tokenSecret) {
    throw new SandboxUnavailableError(
      "The Modal sandbox provider needs Modal credentials: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET " +
        "(a token from https://modal.com/settings/tokens), or use SANDBOX_PROVIDER=local.",
    );
  }
  const appPort = options.appPort ?? MODAL_APP_PORT;
  const egress = options.egress ?? { mode: "registry" };
  // Checked before any call to Modal: a policy Modal cannot express is refused, never widened.
  const network = modalNetworkParams(egress);
  const settings: BoxSettings = { appPort, env: modalBoxEnv(egress), app: options.app ?? {} };
  const { modal, client } = await modalClient(tokenId, tokenSecret);

  if (options.sandboxId) {
    // A reattached sandbox keeps the network policy it was created with (decision 023).
    const existing = await reattach(modal, client, options.sandboxId);
    if (existing) return new ModalSandbox(modal, existing, settings);
  }

  const app = await client.apps.fromName(options.appName ?? DEFAULT_APP_NAME, { createIfMissing: true });
  const image = client.images.fromRegistry(options.image ?? DEFAULT_IMAGE);
  const box = await client.sandboxes.create(app, image, {
    timeoutMs: options.lifetimeMs ?? DEFAULT_LIFETIME_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    encryptedPorts: [appPort],
    ...network,
    env: settings.env,
    tags: { dyno_project: options.projectId, dyno_egress: egress.mode },
  });
  try {
    await box.filesystem.makeDirectory(MODAL_WORKDIR, { createParents: true });
  } catch (error) {
    await box.terminate().catch(() => {});
    throw error;
  }
  return new ModalSandbox(modal, box, settings);
}

interface BoxSettings {
  appPort: number;
  /** Set on every exec too: a sandbox's own env is not documented to reach execs. */
  env: Record<string, string>;
  app: Omit<ModalAppOptions, "workdir" | "appPort">;
}

/** The sandbox with this id if it is still running; undefined if it has ended or is unknown. */
async function reattach(modal: ModalSdk, client: ModalClient, sandboxId: string): Promise<ModalBox | undefined> {
  try {
    const box = await client.sandboxes.fromId(sandboxId);
    // poll(): null while running, the exit code once finished.
    return (await box.poll()) === null ? box : undefined;
  } catch (error) {
    if (error instanceof modal.NotFoundError || error instanceof modal.InvalidError) return undefined;
    throw error;
  }
}

/** Reads a stream to its end into `into`; stops quietly when the reader is cancelled. */
async function pump(
  stream: ReadableStream<Uint8Array>,
  into: CappedOutput,
  readers: ReadableStreamDefaultReader<Uint8Array>[],
) {
  const reader = stream.getReader();
  readers.push(reader);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value) into.push(value);
    }
  } catch {
    // Cancelled after a kill, or the output stream ended with the process.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Modal's exec timeout: whole seconds only. */
function wholeSeconds(ms: number): number {
  return Math.ceil(ms / 1000) * 1000;
}

class ModalSandbox implements Sandbox {
  readonly provider = "modal" as const;
  readonly app: ModalAppProcess;
  readonly id: string;
  private destroyed = false;

  constructor(
    private readonly modal: ModalSdk,
    private readonly box: ModalBox,
    private readonly settings: BoxSettings,
  ) {
    this.id = box.sandboxId;
    const transport: AppBoxTransport = {
      run: async (argv, { maxOutputBytes }) => {
        this.ensureUsable();
        const result = await this.run(argv, maxOutputBytes);
        return { exitCode: result.exitCode, stdout: result.bytes.toString("utf8"), stderr: result.stderr };
      },
      writeFile: async (absolutePath, content) => {
        this.ensureUsable();
        const made = await this.run(["mkdir", "-p", posix.dirname(absolutePath)], 4096);
        if (made.exitCode !== 0) throw new Error(`Cannot create ${posix.dirname(absolutePath)}: ${made.stderr.trim()}`);
        await this.box.filesystem.writeText(content, absolutePath);
      },
      tunnelUrl: async (port) => (await this.box.tunnels())[port]?.url ?? null,
    };
    this.app = new ModalAppProcess(transport, { ...settings.app, workdir: MODAL_WORKDIR, appPort: settings.appPort });
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
    const { relative, absolute } = this.resolve(filePath);
    if (relative === "")
      throw new SandboxFileError(`${JSON.stringify(filePath)} is the workspace folder itself, not a file`);
    const existing = await this.statOrNull(absolute, relative);
    if (existing?.type === "directory")
      throw new SandboxFileError(`${JSON.stringify(relative)} is a folder, not a file`);
    try {
      await this.box.filesystem.writeText(content, absolute);
    } catch (error) {
      throw this.fileError(error, relative, "write");
    }
    return { path: relative, bytes, created: !existing };
  }

  async readFile(filePath: string, options: { maxBytes?: number } = {}): Promise<FileRead> {
    this.ensureUsable();
    const maxBytes = positive("maxBytes", options.maxBytes ?? DEFAULT_READ_MAX_BYTES);
    const { relative, absolute } = this.resolve(filePath);
    const name = JSON.stringify(relative || filePath);
    if (relative === "")
      throw new SandboxFileError(`${name} is the workspace folder itself; list it instead of reading it`);
    const read = await this.run(readHeadArgv(absolute, maxBytes), maxBytes);
    if (read.exitCode === MISSING) throw new SandboxFileError(`File ${name} does not exist`);
    if (read.exitCode === IS_FOLDER) throw new SandboxFileError(`${name} is a folder, not a file; list it instead`);
    if (read.exitCode === NOT_FOLDER_OR_FILE) throw new SandboxFileError(`${name} is not a regular file`);
    if (read.exitCode !== 0)
      throw new SandboxFileError(`Cannot read ${name}: ${read.stderr.trim() || `exit ${read.exitCode}`}`);
    const size = Math.max(Number.parseInt(read.stderr, 10) || 0, read.bytes.length);
    return fileReadOf(relative, read.bytes.subarray(0, maxBytes), size);
  }

  async listFiles(folderPath = "", options: { maxEntries?: number } = {}): Promise<FileList> {
    this.ensureUsable();
    const maxEntries = positive("maxEntries", options.maxEntries ?? DEFAULT_LIST_MAX_ENTRIES);
    const { relative, absolute } = this.resolve(folderPath);
    const name = JSON.stringify(relative || folderPath);
    const limit = maxEntries + 1;
    const listing = await this.run(listFilesArgv(absolute, limit), limit * (MAX_PATH_CHARS + 8));
    if (listing.exitCode === MISSING) throw new SandboxFileError(`Folder ${name} does not exist`);
    if (listing.exitCode === NOT_FOLDER_OR_FILE) throw new SandboxFileError(`${name} is a file, not a folder`);
    if (listing.exitCode !== 0)
      throw new SandboxFileError(`Cannot list ${name}: ${listing.stderr.trim() || `exit ${listing.exitCode}`}`);
    const files = listing.bytes
      .toString("utf8")
      .split("\0")
      .filter((entry) => entry.startsWith("./"))
      .map((entry) => (relative ? `${relative}/${entry.slice(2)}` : entry.slice(2)))
      .sort(compareListedPaths);
    return { files: files.slice(0, maxEntries), truncated: files.length > maxEntries };
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    this.ensureUsable();
    const startedAt = performance.now();
    const { timeoutMs, maxOutputBytes } = execLimits(options);
    const { signal } = options;
    if (signal?.aborted) return abortedResult(startedAt);
    const refusal = refuseCommand(command);
    if (refusal) return refusedResult(refusal, startedAt);

    const pidFile = `/tmp/dyno-exec-${randomUUID()}.pid`;
    const child = await this.box.exec(execArgv(pidFile, command), {
      mode: "binary",
      workdir: MODAL_WORKDIR,
      env: { ...this.settings.env, TERM: "dumb" },
      // Modal's own kill, a backstop should the follow-up kill below fail; it kills the main process only.
      timeoutMs: wholeSeconds(timeoutMs + 5_000),
    });
    const stdout = new CappedOutput(maxOutputBytes);
    const stderr = new CappedOutput(maxOutputBytes);
    const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
    const output = Promise.all([pump(child.stdout, stdout, readers), pump(child.stderr, stderr, readers)]);

    // Whichever comes first: the exit, the timeout, or the abort.
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<"timeout" | "abort">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, timeoutMs - (performance.now() - startedAt)));
      onAbort = () => resolve("abort");
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
    const exited = child.wait().then(
      (code) => ({ kind: "exit" as const, code }),
      (error: unknown) => ({ kind: "error" as const, error }),
    );
    try {
      const first = await Promise.race([exited, stopped.then((kind) => ({ kind }))]);
      if (first.kind !== "exit") {
        // SIGKILL the command's process group by a second exec: the SDK cannot signal a running exec.
        // Also when waiting failed, so a command we lost track of does not run on unseen.
        await this.killGroup(pidFile);
      }
      if (first.kind === "error") throw first.error;
      // Output still in flight after the exit; a background process that kept the pipe open is not waited for.
      await Promise.race([output, delay(SETTLE_MS)]);
      return {
        exitCode: first.kind === "exit" ? first.code : null,
        stdout: stdout.text(),
        stderr: stderr.text(),
        truncated: stdout.truncated || stderr.truncated,
        timedOut: first.kind === "timeout",
        aborted: first.kind === "abort",
        durationMs: elapsed(startedAt),
      };
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      for (const reader of readers) reader.cancel().catch(() => {});
    }
  }

  async preview(): Promise<PreviewLocation> {
    this.ensureUsable();
    const tunnels = await this.box.tunnels();
    const tunnel = tunnels[this.settings.appPort];
    if (!tunnel) {
      throw new SandboxUnavailableError(
        `Modal sandbox ${this.id} has no tunnel for port ${this.settings.appPort} (it exposes ${Object.keys(tunnels).join(", ") || "none"})`,
      );
    }
    return { kind: "url", url: tunnel.url };
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    try {
      await this.box.terminate();
    } catch (error) {
      // Already ended (or never known to Modal): nothing left to destroy.
      const ended = await this.box.poll().then(
        (code) => code !== null,
        () => true,
      );
      if (!ended) throw error;
    }
    this.destroyed = true;
  }

  private ensureUsable(): void {
    if (this.destroyed) throw new SandboxUnavailableError(`Sandbox ${this.id} has been destroyed`);
  }

  private resolve(input: string): { relative: string; absolute: string } {
    const relative = normalizeWorkspacePath(input);
    return { relative, absolute: relative ? posix.join(MODAL_WORKDIR, relative) : MODAL_WORKDIR };
  }

  private async statOrNull(absolute: string, relative: string) {
    try {
      return await this.box.filesystem.stat(absolute);
    } catch (error) {
      if (error instanceof this.modal.SandboxFilesystemNotFoundError) return null;
      if (error instanceof this.modal.SandboxFilesystemNotADirectoryError) {
        throw new SandboxFileError(`${JSON.stringify(relative)}: part of its folder path is a file`);
      }
      throw error;
    }
  }

  private fileError(error: unknown, relative: string, action: "read" | "write"): Error {
    const { modal } = this;
    const name = JSON.stringify(relative);
    if (error instanceof modal.SandboxFilesystemNotFoundError)
      return new SandboxFileError(`File ${name} does not exist`);
    if (error instanceof modal.SandboxFilesystemIsADirectoryError)
      return new SandboxFileError(`${name} is a folder, not a file`);
    if (error instanceof modal.SandboxFilesystemNotADirectoryError) {
      return new SandboxFileError(`Cannot ${action} ${name}: part of its folder path is a file`);
    }
    if (error instanceof modal.SandboxFilesystemPermissionError)
      return new SandboxFileError(`Permission denied: cannot ${action} ${name}`);
    if (error instanceof modal.SandboxFilesystemFileTooLargeError)
      return new SandboxFileError(`${name} is too large to ${action}`);
    return error instanceof Error ? error : new Error(String(error));
  }

  private async killGroup(pidFile: string): Promise<void> {
    try {
      const killer = await this.box.exec(killArgv(pidFile), {
        timeoutMs: wholeSeconds(KILL_COMMAND_TIMEOUT_MS),
      });
      await Promise.race([killer.wait(), delay(KILL_COMMAND_TIMEOUT_MS)]);
    } catch {
      // The sandbox may have ended; Modal's exec timeout is the backstop.
    }
  }

  /** An internal command (argv, no shell wrapper): exit code and capped output. */
  private async run(
    argv: string[],
    maxOutputBytes: number,
  ): Promise<{ exitCode: number; bytes: Buffer; stderr: string }> {
    const child: ContainerProcess<Uint8Array> = await this.box.exec(argv, {
      mode: "binary",
      workdir: MODAL_WORKDIR,
      env: this.settings.env,
      timeoutMs: 60_000,
    });
    const chunks: Buffer[] = [];
    let kept = 0;
    const stderr = new CappedOutput(4096);
    const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
    const readStdout = (async () => {
      const reader = child.stdout.getReader();
      readers.push(reader);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (value && kept < maxOutputBytes) {
          const part = Buffer.from(value.subarray(0, maxOutputBytes - kept));
          chunks.push(part);
          kept += part.length;
        }
      }
    })();
    const [exitCode] = await Promise.all([child.wait(), readStdout, pump(child.stderr, stderr, readers)]);
    return { exitCode, bytes: Buffer.concat(chunks), stderr: stderr.text() };
  }
}
