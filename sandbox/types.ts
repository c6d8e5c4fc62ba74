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
