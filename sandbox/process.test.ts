/** The exec result runProcess gives when a command ends on its own, by a kill, or under a limit's verdict. */
import { describe, expect, it } from "vitest";
import type { CommandGuard } from "./guard";
import type { ResourceLimit } from "./limits";
import { runProcess } from "./process";

const base = { cwd: "/", env: { PATH: "/usr/bin:/bin" }, timeoutMs: 10_000, maxOutputBytes: 10_000 };

/** A guard that never kills and gives `verdict` once the command has ended (like a kernel-enforced limit). */
function verdictGuard(verdict: ResourceLimit | undefined): CommandGuard {
  return { start() {}, finish: () => Promise.resolve(verdict) };
}

describe("runProcess", () => {
  it("gives a command's own exit code", async () => {
    const result = await runProcess("/bin/sh", ["-c", "echo hi; exit 3"], base);
    expect(result).toMatchObject({ exitCode: 3, stdout: "hi\n", timedOut: false, aborted: false });
  });

  it("reports an OOM-killed command as killed even when a parent (bubblewrap) exited 137 for it", async () => {
    const result = await runProcess("/bin/sh", ["-c", "exit 137"], { ...base, guard: verdictGuard("memory") });
    expect(result).toMatchObject({ exitCode: null, limit: "memory" });
  });

  it("keeps the exit code of a command held back by a limit that kills nothing (a refused fork)", async () => {
    const result = await runProcess("/bin/sh", ["-c", "exit 1"], { ...base, guard: verdictGuard("processes") });
    expect(result).toMatchObject({ exitCode: 1, limit: "processes" });
  });

  it("reports a timed-out command as killed", async () => {
    const result = await runProcess("/bin/sh", ["-c", "sleep 5"], { ...base, timeoutMs: 100 });
    expect(result).toMatchObject({ exitCode: null, timedOut: true });
  });
});
