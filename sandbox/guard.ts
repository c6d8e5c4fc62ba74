/**
 * Watches one running command against its resource limits and says which one
 * ended it. The kernel enforces what a cgroup holds (cgroups.ts); this notices
 * it happened (an OOM kill, a refused fork) and ends the whole command. What no
 * cgroup holds here is measured by polling: the workspace's disk use always
 * (no cgroup bounds disk), and the process tree's memory and process count on
 * hosts without writable cgroups.
 */
import { readdir, readFile } from "node:fs/promises";
import type { CommandCgroup } from "./cgroups";
import { diskUsage } from "./disk-usage";
import type { ResourceLimit, SandboxLimits } from "./limits";

export interface CommandGuard {
  /** Starts watching the spawned command; `stop` is called (once) when it must be killed for a limit. */
  start(pid: number, stop: (limit: ResourceLimit) => void): void;
  /** Stops watching and gives the limit that ended or held back the command, if any. */
  finish(outcome: { timedOut: boolean }): Promise<ResourceLimit | undefined>;
}

export interface GuardOptions {
  limits: SandboxLimits;
  cgroup?: CommandCgroup;
  /** Limits no cgroup holds here, watched through the command's process tree instead. */
  watchTree: { memory: boolean; processes: boolean };
  /** Folders held to limits.diskBytes each (the workspace, the project's home). */
  diskFolders: string[];
  /** The shortest interval between two disk measurements. Default DISK_POLL_MS. */
  diskPollMs?: number;
  /**
   * The project the command belongs to: without cgroups, its limits hold for the trees of all the project's
   * commands and its app process together, and the largest tree is the one ended when the sum goes over.
   */
  projectId?: string;
}

/** Root pids of the running, polled commands of each project (for limits without cgroups). */
const PROJECT_TREES = Symbol.for("dyno.projectTrees");
function projectTrees(): Map<string, Set<number>> {
  const holder = globalThis as typeof globalThis & { [PROJECT_TREES]?: Map<string, Set<number>> };
  holder[PROJECT_TREES] ??= new Map();
  return holder[PROJECT_TREES];
}

/** This tree, and the project's trees summed (only this tree when it has no project, or is alone in it). */
async function projectUsage(
  pid: number,
  projectId: string | undefined,
): Promise<{ own: { tasks: number; rssBytes: number }; total: { tasks: number; rssBytes: number }; largest: boolean }> {
  const own = await processTree(pid);
  const others = projectId ? [...(projectTrees().get(projectId) ?? [])].filter((other) => other !== pid) : [];
  const total = { ...own };
  let largest = true;
  for (const other of others) {
    const tree = await processTree(other);
    total.tasks += tree.tasks;
    total.rssBytes += tree.rssBytes;
    if (tree.rssBytes > own.rssBytes || (tree.rssBytes === own.rssBytes && other < pid)) largest = false;
  }
  return { own, total, largest };
}

/** Cgroup events and the process tree are checked this often. */
const POLL_MS = 100;
/** Disk use is measured at most this often, and never more than a quarter of the time (du on a big tree takes a while). */
const DISK_POLL_MS = 250;
/** A command that timed out having been throttled in this share of its CPU periods was held back by its CPU limit. */
const CPU_BOUND_SHARE = 0.5;
const PAGE_BYTES = 4096;

export async function createGuard(options: GuardOptions): Promise<CommandGuard> {
  const { limits, cgroup, watchTree, diskFolders } = options;
  const diskPollMs = options.diskPollMs ?? DISK_POLL_MS;
  // A command is never killed for disk it found in use, only for growing past the quota.
  const startUsage = await diskUsage(diskFolders);
  const diskAllowance = startUsage.map((bytes) => Math.max(bytes, limits.diskBytes));
  const overDisk = (usage: number[]) => usage.some((bytes, i) => bytes > diskAllowance[i]!);

  let watching = false;
  let rootPid: number | undefined;
  let hit: ResourceLimit | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let diskTimer: NodeJS.Timeout | undefined;

  const checkKernel = async (): Promise<ResourceLimit | undefined> => {
    if (await cgroup?.memoryExceeded()) return "memory";
    if (await cgroup?.processesExceeded()) return "processes";
    return undefined;
  };

  return {
    start(pid, stop) {
      watching = true;
      if (options.projectId && (watchTree.memory || watchTree.processes)) {
        const trees = projectTrees();
        const set = trees.get(options.projectId) ?? new Set<number>();
        set.add(pid);
        trees.set(options.projectId, set);
        rootPid = pid;
      }
      const report = (limit: ResourceLimit) => {
        if (!watching || hit) return;
        hit = limit;
        stop(limit);
        void cgroup?.kill();
      };
      const poll = async () => {
        const kernel = await checkKernel();
        if (kernel) return report(kernel);
        if (watchTree.memory || watchTree.processes) {
          const { own, total, largest } = await projectUsage(pid, options.projectId);
          // Processes first: a fork bomb's shells also add up to a lot of (shared, so over-counted) resident memory.
          // A tree over the limit on its own always ends; over it together, the largest tree of the project ends.
          if (watchTree.processes && (own.tasks >= limits.processes || (largest && total.tasks >= limits.processes)))
            return report("processes");
          if (
            watchTree.memory &&
            (own.rssBytes > limits.memoryBytes || (largest && total.rssBytes > limits.memoryBytes))
          )
            return report("memory");
        }
      };
      const pollLoop = () => {
        pollTimer = setTimeout(() => void poll().finally(() => watching && !hit && pollLoop()), POLL_MS);
      };
      const diskLoop = (wait: number) => {
        diskTimer = setTimeout(async () => {
          const started = performance.now();
          const usage = await diskUsage(diskFolders);
          if (overDisk(usage)) return report("disk");
          if (watching && !hit) diskLoop(Math.max(diskPollMs, 3 * (performance.now() - started)));
        }, wait);
      };
      pollLoop();
      if (diskFolders.length) diskLoop(diskPollMs);
    },

    async finish({ timedOut }) {
      watching = false;
      if (options.projectId && rootPid !== undefined) {
        const set = projectTrees().get(options.projectId);
        set?.delete(rootPid);
        if (set && !set.size) projectTrees().delete(options.projectId);
      }
      clearTimeout(pollTimer);
      clearTimeout(diskTimer);
      if (hit) return hit;
      // A limit may have struck between the last poll and the end (an OOM-killed child, a file cut at the size limit).
      const kernel = await checkKernel();
      if (kernel) return kernel;
      if (diskFolders.length && overDisk(await diskUsage(diskFolders))) return "disk";
      if (timedOut && cgroup && (await cgroup.cpuThrottledShare()) >= CPU_BOUND_SHARE) return "cpu";
      return undefined;
    },
  };
}

/** Tasks (threads included, as a pids cgroup counts them) and resident memory of `rootPid` and its descendants. */
export async function processTree(rootPid: number): Promise<{ tasks: number; rssBytes: number }> {
  const children = new Map<number, number[]>();
  const stats = new Map<number, { tasks: number; rss: number }>();
  const entries = await readdir("/proc").catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter((entry) => /^\d+$/.test(entry))
      .map(async (entry) => {
        const text = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
        // Fields after the command name, which is in parentheses and may itself hold spaces or parentheses.
        const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
        if (fields.length < 22) return;
        const pid = Number(entry);
        const ppid = Number(fields[1]);
        stats.set(pid, { tasks: Number(fields[17]), rss: Number(fields[21]) * PAGE_BYTES });
        children.set(ppid, [...(children.get(ppid) ?? []), pid]);
      }),
  );
  let tasks = 0;
  let rssBytes = 0;
  const pending = [rootPid];
  const seen = new Set<number>();
  while (pending.length) {
    const pid = pending.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    const stat = stats.get(pid);
    if (stat) {
      tasks += stat.tasks;
      rssBytes += stat.rss;
    }
    pending.push(...(children.get(pid) ?? []));
  }
  return { tasks, rssBytes };
}
