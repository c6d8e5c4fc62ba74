/**
 * Placeholder app process for providers that cannot run one yet: it is always stopped and refuses to start,
 * saying why. Replaced per provider by a real supervisor (sandbox/app/ for local, modal.ts for Modal).
 */
import { SandboxUnavailableError, type AppLogs, type AppProcess, type AppStatus } from "./types";

export class UnavailableAppProcess implements AppProcess {
  constructor(private readonly why: string) {}

  private stopped(): AppStatus {
    return {
      state: "stopped",
      command: null,
      port: null,
      startedAt: null,
      restarts: 0,
      reason: this.why,
      nextRestartAt: null,
    };
  }

  async status(): Promise<AppStatus> {
    return this.stopped();
  }
  async start(): Promise<AppStatus> {
    throw new SandboxUnavailableError(this.why);
  }
  async restart(): Promise<AppStatus> {
    throw new SandboxUnavailableError(this.why);
  }
  async stop(): Promise<AppStatus> {
    return this.stopped();
  }
  async logs(): Promise<AppLogs> {
    return { lines: [], nextSeq: 0, truncated: false };
  }
  async appendLog(): Promise<void> {}
  touch(): void {}
  async endpoint(): Promise<null> {
    return null;
  }
}
