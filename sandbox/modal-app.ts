/**
 * The app process on the Modal provider. Modal's SDK (0.11) can start a process in the box (exec) and wait for
 * it, nothing more: no signals, no reattaching to a running exec. So the supervision lives in the box: a small
 * node script (runtime/modal-app.mjs, written into the box on first use) runs the dev server detached, appends
 * its output to a bounded log with seq numbers, restarts it after a crash with backoff, stops it when idle, and
 * answers status / logs / stop as one short exec each. The box is the single source of truth, so every Sandbox
 * object of a project (and every Dyno replica) sees the same app without a registry on this side.
 *
 * The app is reached through the Modal tunnel of one port (appPort, 3000): the box must be created with it
 * exposed. The dev server is told PORT=appPort HOST=0.0.0.0; one listening elsewhere (Vite on localhost:5173) is
 * bridged from 0.0.0.0:appPort by the supervisor, so the tunnel reaches it either way.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path, { posix } from "node:path";
import { fileURLToPath } from "node:url";
import { refuseCommand } from "./exec-common";
import { appCheckout } from "./local";
import { appArgv } from "./modal-scripts";
import { SandboxUnavailableError, type AppEndpoint, type AppLogs, type AppProcess, type AppStatus } from "./types";

/** How ModalAppProcess reaches the box; the Modal sandbox in production, this machine in the script's tests. */
export interface AppBoxTransport {
  /** Runs argv in the box, cwd the workspace; exit code (127: no such program) and capped output. */
  run(
    argv: string[],
    options: { maxOutputBytes: number },
  ): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** Writes a text file at an absolute path in the box, creating its folder. */
  writeFile(absolutePath: string, content: string): Promise<void>;
  /** The public URL through which the port is reached, or null when the box exposes no such port. */
  tunnelUrl(port: number): Promise<string | null>;
}

export interface ModalAppOptions {
  /** The workspace inside the box (the command's cwd). */
  workdir: string;
  /** Folder in the box for the script, state and log. Default /tmp/dyno-app. */
  stateDir?: string;
  /** The port the tunnel exposes; the command gets it as PORT. Default 3000. */
  appPort?: number;
  /** How long start() waits for the app to listen. Default 60 s. */
  startTimeoutMs?: number;
  /** Stopped after this long without touch(). Default 15 min. */
  idleTimeoutMs?: number;
  /** The log file rotates at this size (one older file kept, so up to twice this). Default 256 KiB. */
  logLimitBytes?: number;
  /** Waits before each restart after a crash; after the last one it gives up. Default 1, 2, 4, 8, 16, 30 s. */
  restartBackoffMs?: number[];
  /** How often start() asks whether it listens yet. Default 500 ms. */
  pollMs?: number;
}

export const MODAL_APP_PORT = 3000;
const DEFAULT_STATE_DIR = "/tmp/dyno-app";
const DEFAULT_START_TIMEOUT_MS = 60_000;
const DEFAULT_IDLE_TIMEOUT_MS = 15 * 60_000;
const DEFAULT_LOG_LIMIT_BYTES = 256 * 1024;
const DEFAULT_BACKOFF_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000];
const DEFAULT_POLL_MS = 500;
/** touch() reaches the box at most this often: the idle timeout is minutes, a preview request is every few ms. */
const TOUCH_INTERVAL_MS = 60_000;
/** status() answers from memory for this long, so a burst of preview requests costs one round trip. */
const STATUS_CACHE_MS = 1_000;
export const MAX_LOG_LINES = 1_000;
const DEFAULT_LOG_LINES = 200;
/** What crosses the network per call: the log's longest answer is MAX_LOG_LINES of at most ~2 KiB each. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
const MAX_APPEND_CHARS = 4_000;
const MAX_REASON_CHARS = 300;

let scriptSource: { text: string; version: string } | undefined;

/** The supervisor script and a short hash of it: the box runs the copy named by the hash, never an older one. */
export function modalAppScript(): { text: string; version: string } {
  if (!scriptSource) {
    // Beside this module when run from source; from the checkout when this module was bundled into build/.
    const besideModule = fileURLToPath(new URL("./runtime/modal-app.mjs", import.meta.url));
    const inCheckout = path.join(appCheckout(), "sandbox", "runtime", "modal-app.mjs");
    const text = readFileSync(existsSync(besideModule) ? besideModule : inCheckout, "utf8");
    scriptSource = { text, version: createHash("sha256").update(text).digest("hex").slice(0, 12) };
  }
  return scriptSource;
}

export class ModalAppProcess implements AppProcess {
  private readonly stateDir: string;
  private readonly appPort: number;
  private readonly startTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly logLimitBytes: number;
  private readonly backoffMs: number[];
  private readonly pollMs: number;
  private scriptPath: Promise<string> | undefined;
  private lastTouch = 0;
  private cached: { at: number; status: AppStatus } | undefined;
  /** Starts and stops from this object one at a time (the wait for listening is outside it, so stop never waits). */
  private changing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly transport: AppBoxTransport,
    private readonly options: ModalAppOptions,
  ) {
    this.stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
    this.appPort = options.appPort ?? MODAL_APP_PORT;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.logLimitBytes = options.logLimitBytes ?? DEFAULT_LOG_LIMIT_BYTES;
    this.backoffMs = options.restartBackoffMs ?? DEFAULT_BACKOFF_MS;
    this.pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    if (!posix.isAbsolute(this.stateDir)) throw new RangeError(`stateDir must be absolute, got ${this.stateDir}`);
  }

  async status(): Promise<AppStatus> {
    if (this.cached && performance.now() - this.cached.at < STATUS_CACHE_MS) return this.cached.status;
    return this.remember(await this.op<AppStatus>("status"));
  }

  async start(options: { command?: string; signal?: AbortSignal } = {}): Promise<AppStatus> {
    const { command, signal } = options;
    if (command !== undefined) {
      const refusal = refuseCommand(command);
      if (refusal) throw new RangeError(refusal.replace(/^dyno: /, ""));
      if (!command.trim()) throw new RangeError("the app's command is empty");
    }
    signal?.throwIfAborted();
    const done = await this.serially(async () => {
      const current = await this.fresh();
      const same = command === undefined || command === current.command;
      if (same && current.state === "running") return current;
      if (same && current.state === "starting") return null;
      await this.op("start", [
        this.options.workdir,
        String(this.appPort),
        String(this.logLimitBytes),
        String(this.idleTimeoutMs),
        this.backoffMs.join(","),
        command ?? "",
      ]);
      this.lastTouch = Date.now();
      return null;
    });
    return done ?? this.untilStarted(signal);
  }

  async restart(options: { command?: string; signal?: AbortSignal } = {}): Promise<AppStatus> {
    // The script's start stops what runs first ("stopped: restarting" in the log), then starts the given command
    // or the saved one.
    const current = await this.fresh();
    if (current.state === "running" || current.state === "starting") await this.stop("restarting");
    return this.start(options);
  }

  async stop(reason = "stopped"): Promise<AppStatus> {
    const why = cutText(String(reason), MAX_REASON_CHARS) || "stopped";
    return this.serially(async () => this.remember(await this.op<AppStatus>("stop", [why])));
  }

  async logs(options: { sinceSeq?: number; maxLines?: number } = {}): Promise<AppLogs> {
    const sinceSeq = Math.max(0, Math.floor(Number(options.sinceSeq ?? 0)) || 0);
    const maxLines = Math.min(
      MAX_LOG_LINES,
      Math.max(1, Math.floor(Number(options.maxLines ?? DEFAULT_LOG_LINES)) || 1),
    );
    return this.op<AppLogs>("logs", [String(sinceSeq), String(maxLines)]);
  }

  async appendLog(stream: "system" | "browser", text: string): Promise<void> {
    if (stream !== "system" && stream !== "browser") {
      throw new RangeError(`appendLog takes "system" or "browser", not ${JSON.stringify(stream)}`);
    }
    // NUL cannot cross an argv; the rest of the bound is the script's (one line of at most 2,000 characters).
    const line = cutText(String(text).replaceAll("\0", ""), MAX_APPEND_CHARS);
    await this.op("append", [String(this.logLimitBytes), stream, line]);
  }

  touch(): void {
    const now = Date.now();
    if (now - this.lastTouch < TOUCH_INTERVAL_MS) return;
    this.lastTouch = now;
    // Best effort: a lost touch costs at most one interval of idle time.
    this.op("touch").catch(() => {
      this.lastTouch = 0;
    });
  }

  async endpoint(): Promise<AppEndpoint | null> {
    const status = await this.status();
    if (status.state !== "running") return null;
    const url = await this.transport.tunnelUrl(this.appPort);
    if (!url) {
      throw new SandboxUnavailableError(
        `This Modal sandbox exposes no tunnel for port ${this.appPort}, so its app cannot be reached; ` +
          "a new sandbox (after this one ends) will have it",
      );
    }
    return { kind: "url", url };
  }

  private serially<T>(change: () => Promise<T>): Promise<T> {
    const next = this.changing.then(change, change);
    this.changing = next.catch(() => {});
    return next;
  }

  private async fresh(): Promise<AppStatus> {
    this.cached = undefined;
    return this.status();
  }

  private remember(status: AppStatus): AppStatus {
    this.cached = { at: performance.now(), status };
    return status;
  }

  /** Polls until it listens, fails, or the start timeout passes (then it is left starting, and says so). */
  private async untilStarted(signal?: AbortSignal): Promise<AppStatus> {
    const deadline = performance.now() + this.startTimeoutMs;
    for (;;) {
      const status = await this.fresh();
      if (status.state !== "starting" || signal?.aborted) return status;
      if (performance.now() >= deadline) {
        return { ...status, reason: `not listening yet after ${Math.round(this.startTimeoutMs / 1000)} s` };
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }

  private ensureScript(): Promise<string> {
    this.scriptPath ??= (async () => {
      const { text, version } = modalAppScript();
      const target = posix.join(this.stateDir, `modal-app-${version}.mjs`);
      await this.transport.writeFile(target, text);
      return target;
    })().catch((error: unknown) => {
      this.scriptPath = undefined;
      throw error;
    });
    return this.scriptPath;
  }

  private async op<T>(name: string, args: string[] = [], retried = false): Promise<T> {
    const script = await this.ensureScript();
    const result = await this.transport.run(appArgv(script, name, this.stateDir, args), {
      maxOutputBytes: MAX_ANSWER_BYTES,
    });
    if (result.exitCode !== 0 && !retried && /Cannot find module/.test(result.stderr)) {
      // Something in the box removed the script (a command cleaning /tmp): write it again, once.
      this.scriptPath = undefined;
      return this.op<T>(name, args, true);
    }
    if (result.exitCode === 127) {
      throw new SandboxUnavailableError(
        "The sandbox image has no `node`, which runs the app process; use a Node image (MODAL_IMAGE, e.g. node:20-slim)",
      );
    }
    if (result.exitCode !== 0) {
      throw new Error(
        `The app process's ${name} failed in the sandbox: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
      );
    }
    try {
      return JSON.parse(result.stdout) as T;
    } catch {
      throw new Error(`The app process's ${name} answered something unreadable: ${result.stdout.slice(0, 200)}`);
    }
  }
}

function cutText(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
