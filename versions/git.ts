/**
 * Runs the system's git against a project's history repository with nothing
 * of the workspace's or the host's configuration: no system or global config,
 * no hooks, no pager, no prompts, literal pathspecs. The workspace can hold a
 * `.git`, a `.gitignore` or a `.gitattributes` of its own; none of them is
 * read as configuration (see store.ts for how each is neutralised).
 */
import { spawn } from "node:child_process";

export class GitError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(message);
    this.name = "GitError";
  }
}

export interface GitOptions {
  gitDir: string;
  /** The work tree; unset for commands that only read the repository. */
  workTree?: string;
  input?: string | Buffer;
  /** Extra environment (GIT_INDEX_FILE for a scratch index, GIT_ASKPASS for a push). */
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Exit codes that are answers, not failures (`diff --quiet` exits 1 for "differs"). */
  okCodes?: number[];
  /** Bound on stdout; over it the command is killed and the call fails. Default 64 MiB. */
  maxOutputBytes?: number;
}

export interface GitResult {
  stdout: Buffer;
  stderr: string;
  exitCode: number;
}

/** Settings that hold for every command: nothing here can be changed by a file in the workspace. */
const SAFE_CONFIG = [
  "core.hooksPath=/dev/null",
  "core.fsmonitor=false",
  "core.autocrlf=false",
  "core.safecrlf=false",
  "core.symlinks=true",
  "core.ignoreCase=false",
  "core.quotePath=false",
  "core.excludesFile=/dev/null",
  "core.attributesFile=/dev/null",
  "core.untrackedCache=false",
  "gc.auto=0",
  "maintenance.auto=false",
  "advice.detachedHead=false",
  "protocol.file.allow=always",
  "credential.helper=",
  "user.name=Dyno",
  "user.email=dyno@localhost",
  // The repository is ours, whoever owns the workspace folder.
  "safe.directory=*",
];

/**
 * As environment (GIT_CONFIG_COUNT…), not `-c`, so the git commands the
 * history's shell runs (git-shell.ts) get them too.
 */
const SAFE_CONFIG_ENV: Record<string, string> = Object.fromEntries([
  ["GIT_CONFIG_COUNT", String(SAFE_CONFIG.length)],
  ...SAFE_CONFIG.flatMap((setting, index) => {
    const eq = setting.indexOf("=");
    return [
      [`GIT_CONFIG_KEY_${index}`, setting.slice(0, eq)],
      [`GIT_CONFIG_VALUE_${index}`, setting.slice(eq + 1)],
    ];
  }),
]);

export function gitEnv(options: Pick<GitOptions, "gitDir" | "workTree" | "env">): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: "/nonexistent",
    LANG: "C",
    LC_ALL: "C",
    GIT_DIR: options.gitDir,
    ...(options.workTree ? { GIT_WORK_TREE: options.workTree } : {}),
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    GIT_LITERAL_PATHSPECS: "1",
    GIT_OPTIONAL_LOCKS: "0",
    GIT_PAGER: "cat",
    GIT_AUTHOR_NAME: "Dyno",
    GIT_AUTHOR_EMAIL: "dyno@localhost",
    GIT_COMMITTER_NAME: "Dyno",
    GIT_COMMITTER_EMAIL: "dyno@localhost",
    ...SAFE_CONFIG_ENV,
    ...options.env,
  };
}

export function git(args: string[], options: GitOptions): Promise<GitResult> {
  return run("git", args, options);
}

function run(file: string, args: string[], options: GitOptions): Promise<GitResult> {
  const maxOutputBytes = options.maxOutputBytes ?? 64 * 1024 * 1024;
  const name = `git ${args[0]}`;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.workTree ?? options.gitDir,
      env: gitEnv(options) as NodeJS.ProcessEnv,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: options.timeoutMs ?? 60_000,
    });
    const out: Buffer[] = [];
    let outBytes = 0;
    let tooLong = false;
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > maxOutputBytes) {
        tooLong = true;
        child.kill("SIGKILL");
        return;
      }
      out.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      if (err.length < 64) err.push(chunk);
    });
    child.on("error", reject);
    // EPIPE when git exits before reading all its input: its exit code says what happened.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");
    child.on("close", (code) => {
      const stderr = Buffer.concat(err).toString("utf8").slice(0, 4000);
      if (tooLong) {
        reject(new GitError(`${name}: output over ${maxOutputBytes} bytes`, stderr, code));
        return;
      }
      const exitCode = code ?? -1;
      if (exitCode !== 0 && !(options.okCodes ?? []).includes(exitCode)) {
        reject(
          new GitError(`git ${args[0]} failed (${exitCode}): ${stderr.trim().split("\n")[0] ?? ""}`, stderr, code),
        );
        return;
      }
      resolve({ stdout: Buffer.concat(out), stderr, exitCode });
    });
  });
}

/** stdout as trimmed text. */
export async function gitText(args: string[], options: GitOptions): Promise<string> {
  return (await git(args, options)).stdout.toString("utf8").trim();
}

/** NUL-separated stdout fields (`-z` output). */
export function nulFields(stdout: Buffer): string[] {
  const fields = stdout.toString("utf8").split("\0");
  if (fields.at(-1) === "") fields.pop();
  return fields;
}
