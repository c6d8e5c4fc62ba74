/**
 * Runs one host process for the local provider with the exec semantics of
 * the Sandbox interface: bounded output, a timeout and an abort signal that
 * kill everything the command started, and a result that always arrives.
 */
import { spawn } from "node:child_process";
import { abortedResult, elapsed } from "./exec-common";
import type { CommandGuard } from "./guard";
import type { ResourceLimit } from "./limits";
import { CappedOutput } from "./output";
import type { ExecResult } from "./types";

export interface RunOptions {
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  maxOutputBytes: number;
  signal?: AbortSignal;
  /** Watches the command's resource limits; hitting one kills it like a timeout, and the result names the limit. */
  guard?: CommandGuard;
}

/** How long to wait for the pipes to close after a kill before giving up on them. */
const CLOSE_GRACE_MS = 1_000;

/**
 * Spawns `file args` in a process group of its own and resolves when it has
 * ended. On timeout or abort the whole group gets SIGKILL (so `sleep 1000 &
 * wait`, `yes` and fork loops die with it); when the main process exits, the
 * group is killed too, so no leftover holds the pipes open or outlives the
 * command. Under bubblewrap the command lives in its own pid namespace, which
 * the kernel empties as soon as bwrap dies.
 */
export function runProcess(file: string, args: string[], options: RunOptions): Promise<ExecResult> {
  const startedAt = performance.now();
  const { signal } = options;
  if (signal?.aborted) return Promise.resolve(abortedResult(startedAt));

  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      // Exactly this environment: nothing of the app's own (its ProcessEnv type insists on NODE_ENV).
      env: options.env as NodeJS.ProcessEnv,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stdout = new CappedOutput(options.maxOutputBytes);
    const stderr = new CappedOutput(options.maxOutputBytes);
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));

    let timedOut = false;
    let aborted = false;
    let killedFor: ResourceLimit | undefined;
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;

    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // The group is already gone.
      }
    };
    // After a kill the pipes close once every holder is dead; a process that
    // left the group (setsid, only possible without bubblewrap) could hold
    // them forever, so stop waiting after a grace period.
    const closeSoon = () => {
      graceTimer ??= setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(null);
      }, CLOSE_GRACE_MS);
    };
    const onAbort = () => {
      if (settled || timedOut || killedFor) return;
      aborted = true;
      killGroup();
      closeSoon();
    };
    const timeoutTimer = setTimeout(() => {
      if (aborted || killedFor) return;
      timedOut = true;
      killGroup();
      closeSoon();
    }, options.timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (child.pid !== undefined) {
      options.guard?.start(child.pid, (limit) => {
        if (settled || timedOut || aborted) return;
        killedFor = limit;
        killGroup();
        closeSoon();
      });
    }

    function cleanUp() {
      settled = true;
      clearTimeout(timeoutTimer);
      if (graceTimer) clearTimeout(graceTimer);
      signal?.removeEventListener("abort", onAbort);
    }

    function finish(code: number | null) {
      if (settled) return;
      cleanUp();
      const killed = timedOut || aborted || killedFor !== undefined;
      const durationMs = elapsed(startedAt);
      const verdict = options.guard ? options.guard.finish({ timedOut }) : Promise.resolve(undefined);
      verdict.then((limit) => {
        resolve({
          // An OOM kill is a kill whichever process the kernel picked: the command itself (a null code) or a process
          // under bubblewrap, which then exits 137 like any shell whose child died of SIGKILL.
          exitCode: killed || limit === "memory" ? null : code,
          stdout: stdout.text(),
          stderr: stderr.text(),
          truncated: stdout.truncated || stderr.truncated,
          timedOut,
          aborted,
          ...(limit ? { limit } : {}),
          durationMs,
        });
      }, reject);
    }

    child.on("error", (error) => {
      if (settled) return;
      cleanUp();
      killGroup();
      void options.guard?.finish({ timedOut: false });
      reject(error);
    });
    child.on("exit", () => {
      killGroup();
      closeSoon();
    });
    // `code` is null when a signal ended the process: reported as killed (null).
    child.on("close", (code) => finish(code));
  });
}
