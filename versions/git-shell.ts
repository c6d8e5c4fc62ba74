/**
 * One long-lived `sh` per history repository that runs its git commands
 * (sandbox/shell-session.ts says why a shell); taking a version runs its git
 * commands here (store.ts). A shell that fails becomes a GitError.
 */
import { ShellSession, ShellSessionError, shellQuote } from "../sandbox/shell-session";
import { GitError, gitEnv } from "./git";

export { shellQuote } from "../sandbox/shell-session";

export class GitShell {
  private readonly session: ShellSession;

  constructor(
    gitDir: string,
    private readonly workTree: string,
  ) {
    this.session = new ShellSession({
      cwd: workTree,
      env: gitEnv({ gitDir, workTree }),
      name: "git shell",
    });
  }

  /** Runs `command` (one line of sh, in a subshell; it redirects its own output) and resolves with its exit code. */
  async run(command: string, options: { timeoutMs?: number } = {}): Promise<number> {
    try {
      // From the workspace folder as it is now: the shell's own working folder is gone if it was replaced.
      return await this.session.run(`cd ${shellQuote(this.workTree)} || exit 125; ${command}`, options);
    } catch (error) {
      if (error instanceof ShellSessionError) throw new GitError(error.message, "", null);
      throw error;
    }
  }

  close(): void {
    this.session.close();
  }
}
