/**
 * Bytes a folder takes on disk, measured with `du` through a long-lived
 * shell (shell-session.ts): a command's limits are checked with it before,
 * during and after the command, and forking `du` from the app's process for
 * each check cost more CPU than the rest of a short command's step. One shell
 * per set of folders (a project's), so a slow measurement of a large project
 * holds up no other; the least recently used are closed beyond a bound.
 */
import { readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { shellQuote, ShellSession } from "./shell-session";

const MAX_SHELLS = 32;
const DU_TIMEOUT_MS = 30_000;

const shells = new Map<string, ShellSession>();
let measurements = 0;

function shellFor(key: string): ShellSession {
  let shell = shells.get(key);
  if (shell) shells.delete(key);
  else
    shell = new ShellSession({ cwd: "/", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" }, name: "du" });
  // Most recently used last.
  shells.set(key, shell);
  for (const [oldKey, old] of shells) {
    if (shells.size <= MAX_SHELLS) break;
    old.close();
    shells.delete(oldKey);
  }
  return shell;
}

/** Bytes each folder takes on disk (allocated blocks, so sparse files count what they really use); 0 if unreadable. */
export async function diskUsage(folders: string[]): Promise<number[]> {
  if (!folders.length) return [];
  const out = path.join(os.tmpdir(), `dyno-du-${process.pid}-${++measurements}`);
  try {
    // du exits non-zero when a folder is missing; the others are still listed.
    await shellFor(folders.join("\0")).run(
      `du -s -k -- ${folders.map(shellQuote).join(" ")} > ${shellQuote(out)} 2> /dev/null`,
      { timeoutMs: DU_TIMEOUT_MS },
    );
    const text = await readFile(out, "utf8");
    // One "<KiB>\t<folder>" line per folder, in order; a folder du could not read counts as empty.
    const sizes = new Map(
      text
        .trim()
        .split("\n")
        .map((line) => line.split("\t"))
        .map(([kib, folder]) => [folder, Number(kib) * 1024] as const),
    );
    return folders.map((folder) => sizes.get(folder) ?? 0);
  } catch {
    return folders.map(() => 0);
  } finally {
    await rm(out, { force: true });
  }
}
