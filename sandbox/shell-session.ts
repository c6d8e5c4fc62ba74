/**
 * One long-lived `sh` that runs short host commands for the app. A process
 * start from Node forks the whole Node process, which costs more the bigger
 * the app is (tens of milliseconds in a production server of a few hundred
 * MiB, on the event loop); forking a small shell costs about a millisecond.
 * Version history (versions/git-shell.ts) and disk measurement
 * (disk-usage.ts) run their commands through one.
 *
 * Commands redirect their own output to files; the pipe carries only "done,
 * exit code", so binary or NUL-separated output arrives intact. One command
 * at a time (a queue); a command that does not finish in time kills the
 * shell (and what it started), and the next one starts a new shell. An idle
 * shell exits after a minute.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";

const IDLE_MS = 60_000;
const MARK = "@@dyno-done:";

/** Single-quotes a word for sh. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export class ShellSessionError extends Error {
  override name = "ShellSessionError";
}

export interface ShellSessionOptions {
  cwd: string;
  env: Record<string, string>;
  /** Names the shell in errors ("git shell"). */
  name?: string;
}

export class ShellSession {
  private child: ChildProcessWithoutNullStreams | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly options: ShellSessionOptions) {}

  /** Runs `command` (one line of sh, in a subshell; it redirects its own output) and resolves with its exit code. */
  run(command: string, { timeoutMs = 60_000 }: { timeoutMs?: number } = {}): Promise<number> {
    const next = this.queue.then(() => this.runNow(command, timeoutMs));
    this.queue = next.catch(() => {});
    return next;
  }

  close(): void {
    clearTimeout(this.idle);
    const child = this.child;
    this.child = undefined;
    if (child?.pid === undefined) return;
    try {
      // Its own process group: a command it started dies with it.
      process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  }

  private get name(): string {
    return this.options.name ?? "shell";
  }

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn("/bin/sh", ["-s"], {
      cwd: this.options.cwd,
      env: this.options.env as NodeJS.ProcessEnv,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    child.stdin.on("error", () => {});
    // Commands redirect their own output; anything else is drained so the pipe never fills.
    child.stderr.resume();
    child.on("exit", () => {
      if (this.child === child) this.child = undefined;
    });
    // Never keeps the app from exiting.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    return child;
  }

  private runNow(command: string, timeoutMs: number): Promise<number> {
    clearTimeout(this.idle);
    const child = (this.child ??= this.start());
    return new Promise<number>((resolve, reject) => {
      let seen = "";
      const onData = (chunk: Buffer) => {
        seen += chunk.toString("utf8");
        const at = seen.indexOf(MARK);
        if (at < 0) return;
        const end = seen.indexOf("\n", at);
        if (end < 0) return;
        finish();
        resolve(Number(seen.slice(at + MARK.length, end)));
      };
      const onExit = () => {
        finish();
        reject(new ShellSessionError(`${this.name} ended before the command finished`));
      };
      const timer = setTimeout(() => {
        finish();
        this.close();
        reject(new ShellSessionError(`${this.name}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        child.off("exit", onExit);
        this.idle = setTimeout(() => this.close(), IDLE_MS);
        this.idle.unref();
      };
      child.stdout.on("data", onData);
      child.on("exit", onExit);
      // The command's own output is redirected by the caller; a stray line before the mark is ignored.
      child.stdin.write(`(${command}) </dev/null; echo "${MARK}$?"\n`);
    });
  }
}
