/**
 * How a local command is held to its resource limits on this host, chosen
 * once: cgroups (v1 or v2) for memory, processes and CPU where they can be
 * written; otherwise rlimits set by `prlimit` inside the sandbox, with the
 * process tree polled (guard.ts). Disk is always a per-file rlimit plus
 * polling of the workspace's size, and /tmp is a size-bounded tmpfs.
 */
import { accessSync, constants } from "node:fs";
import { CommandCgroup, detectCgroups, type CgroupController, type CgroupSupport } from "./cgroups";
import { createGuard, type CommandGuard } from "./guard";
import { formatBytes, limitAmount, type ResourceLimit, type SandboxLimits } from "./limits";

/** "auto": cgroups where this host allows them; "rlimits": never cgroups (the fallback, forced). */
export type LimitMode = "auto" | "rlimits";

export interface LimitSupport {
  cgroups: CgroupSupport;
  /** A prlimit binary that also exists inside the sandbox (it lives in a bound system folder). */
  prlimit?: string;
  /** The app runs as root, for whom the kernel does not enforce RLIMIT_NPROC. */
  root: boolean;
}

/** RLIMIT_DATA without a memory cgroup: well above the limit, as Node alone starts with ~50 MB of data. */
function dataBackstop(limits: SandboxLimits): number {
  return limits.memoryBytes + Math.max(limits.memoryBytes, 256 * 1024 * 1024);
}

const PRLIMIT_CANDIDATES = ["/usr/bin/prlimit", "/bin/prlimit"];

/** Only these paths: they are inside (or, for /bin, linked to) the system folders every sandbox binds. */
function findPrlimit(): string | undefined {
  return PRLIMIT_CANDIDATES.find((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const NO_CGROUPS: CgroupSupport = {
  controllers: {},
  missing: { memory: "cgroups not used (forced)", pids: "cgroups not used (forced)", cpu: "cgroups not used (forced)" },
};

export async function detectLimitSupport(mode: LimitMode = "auto"): Promise<LimitSupport> {
  return {
    cgroups: mode === "rlimits" ? NO_CGROUPS : await detectCgroups(),
    prlimit: findPrlimit(),
    root: process.getuid?.() === 0,
  };
}

const RESOURCE_CONTROLLER: Record<Exclude<ResourceLimit, "disk">, CgroupController> = {
  memory: "memory",
  processes: "pids",
  cpu: "cpu",
};

function cgroupName(support: LimitSupport, controller: CgroupController): string | undefined {
  const base = support.cgroups.controllers[controller];
  return base && `cgroup v${base.version}`;
}

/** One line per limit saying how it is enforced here, for the startup log. */
export function describeLimitSupport(support: LimitSupport, limits: SandboxLimits): string[] {
  const amount = (resource: ResourceLimit) => `${resource} ${limitAmount(resource, limits)}`;
  const lines: string[] = [];
  const memory = cgroupName(support, "memory");
  lines.push(
    memory
      ? `${amount("memory")}: ${memory}`
      : `${amount("memory")}: polled every 100 ms (${support.cgroups.missing.memory})` +
          (support.prlimit
            ? `, each process also capped at ${formatBytes(dataBackstop(limits))} of data (RLIMIT_DATA)`
            : ""),
  );
  const pids = cgroupName(support, "pids");
  const nproc = support.prlimit && !support.root;
  lines.push(
    pids
      ? `${amount("processes")}: ${pids}`
      : `${amount("processes")}: polled every 100 ms (${support.cgroups.missing.pids})` +
          (nproc ? ", and RLIMIT_NPROC" : "; no hard cap: RLIMIT_NPROC does not bind root"),
  );
  const cpu = cgroupName(support, "cpu");
  lines.push(cpu ? `${amount("cpu")}: ${cpu}` : `cpu: NOT limited (${support.cgroups.missing.cpu})`);
  lines.push(
    `${amount("disk")} per workspace: size polled (du)` +
      (support.prlimit ? ", and no single file larger (RLIMIT_FSIZE)" : "; prlimit not found, so no per-file cap"),
  );
  return lines;
}

export interface Confinement {
  /** Wraps the host command (bwrap, or sh without isolation) so it joins the command's cgroups before it runs. */
  outer(file: string, args: string[]): { file: string; args: string[] };
  /** Goes right before `sh -c command` (inside bwrap): prlimit with the rlimits that apply. */
  inner: string[];
  guard: CommandGuard;
  /** Removes the command's cgroups; call once the command has ended. */
  dispose(): Promise<void>;
}

/**
 * The cgroup join: a host `sh` writes its own pid into each cgroup.procs and
 * then execs the command, so the command and everything it starts are inside
 * from their first instruction (moving a pid in after spawn would race a fork).
 */
const JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';

export async function prepareConfinement(options: {
  support: LimitSupport;
  limits: SandboxLimits;
  /** Under bubblewrap, which gives the command its own user namespace (and so its own RLIMIT_NPROC count). */
  isolated: boolean;
  diskFolders: string[];
  /** The project whose limits this shares (one parent cgroup per project: its commands and its app process). */
  projectId?: string;
  /** How often disk use is measured at least (a long-lived app process measures less often than a command). */
  diskPollMs?: number;
}): Promise<Confinement> {
  const { support, limits, isolated, diskFolders } = options;
  const cgroup = Object.keys(support.cgroups.controllers).length
    ? await CommandCgroup.create(support.cgroups, limits, { projectId: options.projectId })
    : undefined;
  const has = (resource: Exclude<ResourceLimit, "disk">) =>
    Boolean(support.cgroups.controllers[RESOURCE_CONTROLLER[resource]]);

  const rlimits: string[] = [`--fsize=${limits.diskBytes}`];
  // RLIMIT_AS would stop Node from reserving its address space; RLIMIT_DATA counts only memory really written to.
  // A backstop only: the polled tree is killed at the limit; this stops a single process that grows faster than a poll.
  if (!has("memory")) rlimits.push(`--data=${dataBackstop(limits)}`);
  // Outside a user namespace RLIMIT_NPROC would count every process of the app's user, the app's own included.
  if (!has("processes") && isolated && !support.root) rlimits.push(`--nproc=${limits.processes}`);
  const inner = support.prlimit ? [support.prlimit, ...rlimits, "--"] : [];

  const guard = await createGuard({
    limits,
    cgroup,
    watchTree: { memory: !has("memory"), processes: !has("processes") },
    diskFolders,
    diskPollMs: options.diskPollMs,
    projectId: options.projectId,
  });
  return {
    outer(file, args) {
      if (!cgroup) return { file, args };
      return { file: "/bin/sh", args: ["-c", JOIN_SCRIPT, "dyno-join", ...cgroup.procsFiles(), "--", file, ...args] };
    },
    inner,
    guard,
    dispose: async () => {
      await cgroup?.remove();
    },
  };
}
