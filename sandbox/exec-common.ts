/** Exec input checks and result shapes shared by both providers. */
import { DEFAULT_EXEC_TIMEOUT_MS, DEFAULT_MAX_OUTPUT_BYTES, type ExecOptions, type ExecResult } from "./types";

/**
 * The longest command accepted. Linux refuses a single argument over 128 KiB
 * (MAX_ARG_STRLEN) with E2BIG; refusing earlier gives the model a message it
 * can act on (write a script file and run that).
 */
export const MAX_COMMAND_BYTES = 100 * 1024;

export function positive(name: string, value: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  }
  return Math.floor(value);
}

export function execLimits(options: ExecOptions): { timeoutMs: number; maxOutputBytes: number } {
  return {
    timeoutMs: positive("timeoutMs", options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS),
    maxOutputBytes: positive("maxOutputBytes", options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES),
  };
}

export function elapsed(startedAt: number): number {
  return Math.round(performance.now() - startedAt);
}

export function abortedResult(startedAt: number): ExecResult {
  return {
    exitCode: null,
    stdout: "",
    stderr: "",
    truncated: false,
    timedOut: false,
    aborted: true,
    durationMs: elapsed(startedAt),
  };
}

/**
 * Why a command cannot be run at all, or undefined when it can. Such a command
 * is answered like a shell usage error (exit code 2, the reason on stderr)
 * rather than thrown, so the model reads the reason and tries another way.
 */
export function refuseCommand(command: unknown): string | undefined {
  if (typeof command !== "string") return "dyno: the command must be a string; nothing was run";
  if (command.includes("\0"))
    return "dyno: the command contains a NUL byte, which no shell command can hold; nothing was run";
  const bytes = Buffer.byteLength(command);
  if (bytes > MAX_COMMAND_BYTES) {
    return `dyno: the command is ${bytes} bytes, over the ${MAX_COMMAND_BYTES}-byte limit; write a script file and run it instead. Nothing was run`;
  }
  return undefined;
}

export function refusedResult(reason: string, startedAt: number): ExecResult {
  return {
    exitCode: 2,
    stdout: "",
    stderr: `${reason}\n`,
    truncated: false,
    timedOut: false,
    aborted: false,
    durationMs: elapsed(startedAt),
  };
}
