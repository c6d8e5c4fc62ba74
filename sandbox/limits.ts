/**
 * The resource limits every local sandbox command runs under, and how they
 * are named to a person ("memory limit (1 GiB)"). How they are enforced
 * depends on the host (cgroups.ts, guard.ts); what they are does not.
 */

/** A resource whose limit can end (or, for cpu, hold back) a command. */
export type ResourceLimit = "memory" | "processes" | "cpu" | "disk";

export interface SandboxLimits {
  /** Memory of all the command's processes together (and its /tmp, which lives in memory). */
  memoryBytes: number;
  /** Processes (and threads) the command may have at once. */
  processes: number;
  /** CPU time per wall-clock time, in cores (0.5 = half of one core). */
  cpuCores: number;
  /** Disk use of the project's workspace (and, separately, of its home folder); also the largest single file. */
  diskBytes: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * Per project (its commands and its app process together), sized for a 2-core, 24 GiB host running several projects:
 * 2 GiB holds a Vite dev server (~300 MB) with an `npm install` or a build beside it, and eight busy projects still
 * leave the host memory of its own; 512 processes fit npm's and esbuild's workers many times over but stop a fork
 * bomb early; 1 core each lets two projects use the whole machine and keeps the builder responsive while one
 * compiles; 2 GiB of disk is twenty times a Vite + React app's node_modules (~100 MB).
 */
export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = {
  memoryBytes: 2 * GiB,
  processes: 512,
  cpuCores: 1,
  diskBytes: 2 * GiB,
};

/** "1 GiB", "64 MiB", "1.5 GiB", "512 KiB". */
export function formatBytes(bytes: number): string {
  const units = [
    [GiB, "GiB"],
    [MiB, "MiB"],
    [1024, "KiB"],
  ] as const;
  for (const [size, unit] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`;
  }
  return `${bytes} bytes`;
}

/** The limit's amount, for messages: "1 GiB", "256 processes", "1 core". */
export function limitAmount(resource: ResourceLimit, limits: SandboxLimits): string {
  switch (resource) {
    case "memory":
      return formatBytes(limits.memoryBytes);
    case "disk":
      return formatBytes(limits.diskBytes);
    case "processes":
      return `${limits.processes} processes`;
    case "cpu":
      return `${limits.cpuCores} ${limits.cpuCores === 1 ? "core" : "cores"}`;
  }
}
