import { spawn, type ChildProcess } from "node:child_process";

export interface AppProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Waits for the process to exit after a signal. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts tests/support/serve-app.ts in a child process and waits until it listens. */
export async function startAppProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<AppProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "tests/support/serve-app.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`app process not ready within ${timeoutMs} ms:\n${log}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const match = /ready (http\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`app process exited (${code}) before it was ready:\n${log}`));
    });
  });
  return {
    child,
    url,
    output: () => log,
    async kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
