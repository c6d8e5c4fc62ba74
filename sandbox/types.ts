/**
 * The sandbox the coding agent works in: a folder of files plus a way to run
 * shell commands in it. Two providers implement it: local (a folder on this
 * machine, commands under bubblewrap) and modal (a Modal sandbox).
 */

import type { ResourceLimit } from "./limits";

export type SandboxProviderName = "local" | "modal";

export interface ExecOptions {
  /** Kill the command (and everything it started) after this long. Default 120 s. */
  timeoutMs?: number;
  /** Cap per stream (stdout, stderr). Default 64 KiB. */
  maxOutputBytes?: number;
  /** Aborting kills the command; an already-aborted signal runs nothing. */
  signal?: AbortSignal;
}

export interface ExecResult {
  /** null when the command was killed (timeout, abort, a resource limit, or a signal). */
  exitCode: number | null;
  /** Each stream is capped; over the cap it keeps the head and the tail with a "[… N bytes omitted …]" marker between. */
  stdout: string;
  stderr: string;
  /** True when either stream went over its cap. */
  truncated: boolean;
  /** Killed because timeoutMs passed. */
  timedOut: boolean;
  /** Killed because the signal aborted. */
  aborted: boolean;
  /** Connections the egress policy refused while the command ran (none: empty or unset). */
  egressRefused?: EgressRefusal[];
  /**
   * A resource limit ended the command (exitCode null when it was killed for it), or, for "cpu", held it back
   * until it timed out. Unset when no limit was reached.
   */
  limit?: ResourceLimit;
  /** That limit's amount, for messages: "1 GiB", "256 processes", "1 core". */
  limitAmount?: string;
  durationMs: number;
}

export interface FileWrite {
  /** The workspace-relative POSIX path that was written. */
  path: string;
  bytes: number;
  /** False when an existing file was replaced. */
  created: boolean;
}

export interface FileRead {
  path: string;
  /** UTF-8 text of the first maxBytes bytes; "" for a binary file. */
  content: string;
  /** Size of the whole file. */
  bytes: number;
  truncated: boolean;
  /** Set when the file is not text (sandbox/file-content.ts): its type, from its first bytes. */
  binary?: { mime: string };
  /** Text in which bytes that are not valid UTF-8 were replaced with U+FFFD. */
  invalidUtf8?: boolean;
}

/** Relative POSIX paths (relative to the workspace root), sorted, recursive, skipping node_modules/ and .git/ contents. */
export interface FileList {
  files: string[];
  truncated: boolean;
}

export type PreviewLocation = { kind: "directory"; path: string } | { kind: "url"; url: string };

/**
 * A connection the sandbox's egress policy refused (sandbox/egress/): the agent's command or the app process
 * tried to reach a host that is not on the allow-list.
 */
export interface EgressRefusal {
  /** The host (name or address) as asked for, e.g. "example.com" or "10.0.0.1". */
  host: string;
  port: number;
  /** Why, for people: "not on the allow-list", "an IP address, not a host name", … */
  reason: string;
  /** ISO time. */
  at: string;
}

/** The project's app process: its dev server, one per project, supervised outside the agent's steps. */
export type AppState = "stopped" | "starting" | "running" | "crashed";

export interface AppStatus {
  state: AppState;
  /** What runs (or ran, or would run): the agent's command, else the workspace's `dev` script. null: nothing to run. */
  command: string | null;
  /** The port it listens on inside the sandbox, once known. */
  port: number | null;
  /** ISO time of the current (or last) start. */
  startedAt: string | null;
  /** Restarts after a crash since it was last started on purpose. */
  restarts: number;
  /** Why it is crashed or stopped, for people: "exited with code 1", "memory limit (2 GiB) reached", "idle for 15 min". */
  reason: string | null;
  /** Crashed with a restart pending (backoff): when, ISO. */
  nextRestartAt: string | null;
}

/** One line of the app's bounded log. seq grows by one per line, across restarts, and is never reused. */
export interface AppLogLine {
  seq: number;
  /** ISO time. */
  at: string;
  /** "system": what Dyno says about the process (started, crashed, refused a connection); "browser": errors the preview page reported. */
  stream: "stdout" | "stderr" | "system" | "browser";
  text: string;
}

export interface AppLogs {
  lines: AppLogLine[];
  /** Pass as sinceSeq next time to get only newer lines. */
  nextSeq: number;
  /** Lines older than the first returned were dropped by the bound, or more than maxLines were newer. */
  truncated: boolean;
}

/** Where the preview server reaches the running app: a unix socket on this host (local) or a URL (Modal tunnel). */
export type AppEndpoint = { kind: "socket"; path: string } | { kind: "url"; url: string };

export interface AppProcess {
  status(): Promise<AppStatus>;
  /**
   * Starts it (the command given, else the last one set, else the workspace's `dev` script) and resolves once it
   * listens or has failed to start (state "crashed", reason and log say why), within the start timeout.
   * Already running with the same command: resolves at once.
   */
  start(options?: { command?: string; signal?: AbortSignal }): Promise<AppStatus>;
  /** Stops it and starts it again (with a new command, if given). */
  restart(options?: { command?: string; signal?: AbortSignal }): Promise<AppStatus>;
  /** Stops it (and everything it started). Idempotent. */
  stop(reason?: string): Promise<AppStatus>;
  logs(options?: { sinceSeq?: number; maxLines?: number }): Promise<AppLogs>;
  /** Adds a line to the log, e.g. an error the preview page reported (stream "browser"). */
  appendLog(stream: "system" | "browser", text: string): Promise<void>;
  /** Records activity (a preview request, an agent tool): the idle timer starts over. */
  touch(): void;
  /** Where to reach it while it runs; null when it is not running. */
  endpoint(): Promise<AppEndpoint | null>;
}

export interface Sandbox {
  readonly provider: SandboxProviderName;
  /** Stable id stored on the project row, used to reattach. */
  readonly id: string;
  /** Creates parent folders. Refuses content over 1 MiB. */
  writeFile(path: string, content: string): Promise<FileWrite>;
  /** Default maxBytes 256 KiB; a longer file is cut and `truncated` set. */
  readFile(path: string, options?: { maxBytes?: number }): Promise<FileRead>;
  /** Default maxEntries 1000. */
  listFiles(path?: string, options?: { maxEntries?: number }): Promise<FileList>;
  /** Runs `sh -c command` with cwd = workspace root. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** Where the built app can be seen: local -> the workspace folder; modal -> a tunnel URL. */
  preview(): Promise<PreviewLocation>;
  /** The project's app process (its dev server). Every Sandbox object of a project shares the same one. */
  readonly app: AppProcess;
  /** Removes the workspace (local) or terminates the sandbox (modal). Idempotent. */
  destroy(): Promise<void>;
}

export const DEFAULT_EXEC_TIMEOUT_MS = 120_000;
export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;
export const DEFAULT_READ_MAX_BYTES = 256 * 1024;
export const MAX_WRITE_BYTES = 1024 * 1024;
export const DEFAULT_LIST_MAX_ENTRIES = 1000;
/** Folders whose contents listFiles skips: huge, and never what the agent wants to browse. */
export const LIST_SKIPPED_FOLDERS: ReadonlySet<string> = new Set(["node_modules", ".git"]);

/** A path that would leave the workspace; the message names the path and says why. */
export class SandboxPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SandboxPathError";
  }
}

/** Missing file, a folder where a file was expected, file too large to write, etc. */
export class SandboxFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SandboxFileError";
  }
}

/** The provider cannot work here (isolation unavailable, missing credentials); the message says what to install or set. */
export class SandboxUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SandboxUnavailableError";
  }
}
