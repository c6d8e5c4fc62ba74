/**
 * A cgroup per sandbox command, for hard limits on memory, processes and CPU.
 *
 * Works with cgroup v1 (a hierarchy per controller, as on these machines) and
 * v2 (one unified hierarchy), using whichever mounts this process can write.
 * Every cgroup made here sits below the app's own cgroup, in `dyno/`, so the
 * app's own limits still hold and nothing outside is touched. A project's
 * commands and its app process share one parent, `dyno/project-<id>/`, which
 * carries the project's limits; each command (or app process) gets a child
 * named `<app pid>-<uuid>`, removed when it ends (left-overs of an app that
 * died are swept when the next app starts; an empty project parent too).
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { SandboxLimits } from "./limits";

export type CgroupController = "memory" | "pids" | "cpu";
const CONTROLLERS: CgroupController[] = ["memory", "pids", "cpu"];

/** Where one controller's command cgroups are made. */
interface ControllerBase {
  version: 1 | 2;
  /** The `dyno` folder below the app's own cgroup. */
  folder: string;
}

export interface CgroupSupport {
  /** The controllers that work here, and where. */
  controllers: Partial<Record<CgroupController, ControllerBase>>;
  /** Why each missing controller cannot be used. */
  missing: Partial<Record<CgroupController, string>>;
}

export interface MountedHierarchy {
  version: 1 | 2;
  /** Where it is mounted. */
  mountPoint: string;
  /** The hierarchy's folder that is mounted there (not "/" when a container sees part of it). */
  root: string;
  /** v1: the controllers bound to it. */
  controllers: string[];
}

/** The cgroup hierarchies in /proc/self/mountinfo. */
export function parseMountinfo(text: string): MountedHierarchy[] {
  const found: MountedHierarchy[] = [];
  for (const line of text.split("\n")) {
    const [before, after] = line.split(" - ");
    if (!before || !after) continue;
    const fields = before.split(" ");
    const [fsType, , superOptions = ""] = after.split(" ");
    const unescape = (value: string) =>
      value.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    const root = unescape(fields[3] ?? "/");
    const mountPoint = unescape(fields[4] ?? "");
    if (fsType === "cgroup2") found.push({ version: 2, mountPoint, root, controllers: [] });
    if (fsType === "cgroup") found.push({ version: 1, mountPoint, root, controllers: superOptions.split(",") });
  }
  return found;
}

/** The process's cgroup per v1 controller, and its v2 cgroup under the key "". */
export function parseProcCgroup(text: string): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, controllers, cgroupPath] = match as unknown as [string, string, string];
    for (const controller of controllers === "" ? [""] : controllers.split(",")) paths.set(controller, cgroupPath);
  }
  return paths;
}

/** The host folder of the app's own cgroup in a mounted hierarchy. */
function ownFolder(hierarchy: MountedHierarchy, cgroupPath: string): string {
  const relative =
    hierarchy.root !== "/" && (cgroupPath === hierarchy.root || cgroupPath.startsWith(`${hierarchy.root}/`))
      ? cgroupPath.slice(hierarchy.root.length)
      : cgroupPath;
  return path.join(hierarchy.mountPoint, relative);
}

function message(error: unknown): string {
  const { code, message: text } = error as NodeJS.ErrnoException;
  return code ?? text;
}

let detection: Promise<CgroupSupport> | undefined;

/** What this host offers, probed once per process (a cgroup is made, limited and removed for each controller). */
export function detectCgroups(): Promise<CgroupSupport> {
  detection ??= probeCgroups(
    readFileSync("/proc/self/mountinfo", "utf8"),
    readFileSync("/proc/self/cgroup", "utf8"),
  ).catch((error: unknown) => ({
    controllers: {},
    missing: Object.fromEntries(CONTROLLERS.map((c) => [c, `cgroups could not be read (${message(error)})`])),
  }));
  return detection;
}

export async function probeCgroups(mountinfo: string, procCgroup: string): Promise<CgroupSupport> {
  const hierarchies = parseMountinfo(mountinfo);
  const own = parseProcCgroup(procCgroup);
  const support: CgroupSupport = { controllers: {}, missing: {} };

  for (const controller of CONTROLLERS) {
    const v1 = hierarchies.find((h) => h.version === 1 && h.controllers.includes(controller));
    const v1Path = own.get(controller);
    if (v1 && v1Path !== undefined) {
      const folder = path.join(ownFolder(v1, v1Path), "dyno");
      const problem = await probeFolder(folder, 1, controller);
      if (problem) support.missing[controller] = `cgroup v1 ${controller}: ${problem}`;
      else support.controllers[controller] = { version: 1, folder };
      continue;
    }
    const v2 = hierarchies.find((h) => h.version === 2);
    const v2Path = own.get("");
    if (!v2 || v2Path === undefined) {
      support.missing[controller] = `no cgroup hierarchy offers the ${controller} controller`;
      continue;
    }
    const base = ownFolder(v2, v2Path);
    const problem = await enableV2(base, controller);
    if (problem) {
      support.missing[controller] = `cgroup v2 ${controller}: ${problem}`;
      continue;
    }
    const folder = path.join(base, "dyno");
    const probeProblem = await probeFolder(folder, 2, controller);
    if (probeProblem) support.missing[controller] = `cgroup v2 ${controller}: ${probeProblem}`;
    else support.controllers[controller] = { version: 2, folder };
  }
  for (const base of new Set(Object.values(support.controllers).map((c) => c.folder))) await sweepLeftovers(base);
  return support;
}

/**
 * v2 hands a controller to child cgroups only when every level above enables
 * it in cgroup.subtree_control, and a cgroup holding processes (the app's own,
 * unless it is the root) cannot: then this fails and rlimits are used instead.
 */
async function enableV2(base: string, controller: CgroupController): Promise<string | undefined> {
  try {
    const available = (await readFile(path.join(base, "cgroup.controllers"), "utf8")).split(/\s+/);
    if (!available.includes(controller)) return `not delegated to ${base}`;
    const enabled = (await readFile(path.join(base, "cgroup.subtree_control"), "utf8")).split(/\s+/);
    if (!enabled.includes(controller)) await writeFile(path.join(base, "cgroup.subtree_control"), `+${controller}`);
    const dyno = path.join(base, "dyno");
    await mkdir(dyno, { recursive: true });
    await writeFile(path.join(dyno, "cgroup.subtree_control"), `+${controller}`);
    return undefined;
  } catch (error) {
    return `cannot enable it below ${base} (${message(error)}; the app's cgroup must be delegated and hold no other processes)`;
  }
}

const LIMIT_FILE: Record<1 | 2, Record<CgroupController, string>> = {
  1: { memory: "memory.limit_in_bytes", pids: "pids.max", cpu: "cpu.cfs_quota_us" },
  2: { memory: "memory.max", pids: "pids.max", cpu: "cpu.max" },
};

async function probeFolder(folder: string, version: 1 | 2, controller: CgroupController): Promise<string | undefined> {
  const probe = path.join(folder, `${process.pid}-probe-${randomUUID()}`);
  try {
    await mkdir(probe, { recursive: true });
  } catch (error) {
    return `cannot create ${folder} (${message(error)})`;
  }
  try {
    const file = LIMIT_FILE[version][controller];
    const value = { memory: "67108864", pids: "32", cpu: version === 1 ? "50000" : "50000 100000" }[controller];
    await writeFile(path.join(probe, file), value);
    return undefined;
  } catch (error) {
    return `cannot set ${LIMIT_FILE[version][controller]} (${message(error)})`;
  } finally {
    await rmdir(probe).catch(() => {});
  }
}

/** Removes command cgroups whose app process is gone (the app was killed mid-command), and empty project parents. */
async function sweepLeftovers(base: string): Promise<void> {
  const names = await readdir(base).catch(() => [] as string[]);
  for (const name of names) {
    if (name.startsWith(PROJECT_PREFIX)) {
      const group = path.join(base, name);
      await sweepLeftovers(group);
      // Fails (EBUSY) while a command or app process of another live Dyno process is inside: then it stays.
      await rmdir(group).catch(() => {});
      continue;
    }
    const pid = Number(/^(\d+)-/.exec(name)?.[1]);
    if (!pid || isAlive(pid)) continue;
    const folder = path.join(base, name);
    await killMembers([folder]);
    await rmdir(folder).catch(() => {});
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function members(folder: string): Promise<number[]> {
  const text = await readFile(path.join(folder, "cgroup.procs"), "utf8").catch(() => "");
  return text.split("\n").filter(Boolean).map(Number);
}

async function killMembers(folders: string[]): Promise<void> {
  for (const folder of folders) {
    for (const pid of await members(folder)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/** Reads "key value" lines (memory.events, pids.events, cpu.stat, memory.oom_control). */
async function readCounters(file: string): Promise<Map<string, number>> {
  const counters = new Map<string, number>();
  const text = await readFile(file, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) counters.set(key, Number(value));
  }
  return counters;
}

const CPU_PERIOD_US = 100_000;

/** The project parents' name prefix: `project-<project id>`. */
const PROJECT_PREFIX = "project-";
/** Tries at making a command's cgroup in its project's parent, which another process may sweep away meanwhile. */
const PROJECT_GROUP_ATTEMPTS = 5;
const SAFE_GROUP = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** The folder of a project's parent cgroup for one controller base. */
function groupFolder(base: ControllerBase, projectId: string): string {
  if (!SAFE_GROUP.test(projectId)) throw new Error(`not a safe cgroup name: ${JSON.stringify(projectId)}`);
  return path.join(base.folder, `${PROJECT_PREFIX}${projectId}`);
}

async function writeLimit(
  version: 1 | 2,
  controller: CgroupController,
  folder: string,
  limits: SandboxLimits,
): Promise<void> {
  const set = (file: string, value: string | number) => writeFile(path.join(folder, file), String(value));
  const quota = Math.max(1000, Math.round(limits.cpuCores * CPU_PERIOD_US));
  if (version === 1) {
    if (controller === "memory") {
      await set("memory.limit_in_bytes", limits.memoryBytes);
      // Memory + swap, where swap accounting exists: without it a hog would page out instead of stopping.
      await set("memory.memsw.limit_in_bytes", limits.memoryBytes).catch(() => {});
    }
    if (controller === "pids") await set("pids.max", limits.processes);
    if (controller === "cpu") {
      await set("cpu.cfs_period_us", CPU_PERIOD_US);
      await set("cpu.cfs_quota_us", quota);
    }
  } else {
    if (controller === "memory") {
      await set("memory.max", limits.memoryBytes);
      await set("memory.swap.max", 0).catch(() => {});
    }
    if (controller === "pids") await set("pids.max", limits.processes);
    if (controller === "cpu") await set("cpu.max", `${quota} ${CPU_PERIOD_US}`);
  }
}

/**
 * Makes (or updates) the project's parent cgroup in every controller and sets the project's limits on it. The
 * limits are written each time, so a changed configuration applies from the next command. v1 refuses a memory limit
 * above the current memsw limit, so a raised limit is retried with memsw written first.
 */
async function ensureProjectGroup(support: CgroupSupport, projectId: string, limits: SandboxLimits): Promise<void> {
  for (const [controller, base] of Object.entries(support.controllers) as [CgroupController, ControllerBase][]) {
    const folder = groupFolder(base, projectId);
    await mkdir(folder, { recursive: true });
    if (base.version === 2) {
      // Children of the project parent need the controller handed down to them as well.
      await writeFile(path.join(folder, "cgroup.subtree_control"), `+${controller}`).catch(() => {});
    }
    try {
      await writeLimit(base.version, controller, folder, limits);
    } catch (error) {
      if (base.version !== 1 || controller !== "memory") throw error;
      await writeFile(path.join(folder, "memory.memsw.limit_in_bytes"), String(limits.memoryBytes)).catch(() => {});
      await writeLimit(base.version, controller, folder, limits);
    }
  }
}

/** Kills whatever is left in a project's cgroups and removes them (the project was deleted). */
export async function removeProjectCgroups(support: CgroupSupport, projectId: string): Promise<void> {
  for (const base of Object.values(support.controllers)) {
    const folder = groupFolder(base, projectId);
    const children = await readdir(folder, { withFileTypes: true }).catch(() => []);
    for (const child of children.filter((entry) => entry.isDirectory())) {
      const childFolder = path.join(folder, child.name);
      await killMembers([childFolder]);
      await removeWhenEmpty(childFolder);
    }
    await removeWhenEmpty(folder);
  }
}

async function removeWhenEmpty(folder: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(folder);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || attempt >= 50) return;
      await killMembers([folder]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** One command's cgroup(s): a folder per v1 controller, or one v2 folder for all. */
export class CommandCgroup {
  /** In a project: the project parent's cpu.stat and its counters when this cgroup was made (throttling is counted where the quota is). */
  private cpuBaseline: { file: string; periods: number; throttled: number } | undefined;

  private constructor(private readonly folders: Map<CgroupController, { version: 1 | 2; folder: string }>) {}

  /**
   * Makes the command's cgroups. With a project, inside the project's parent, which carries the limits (shared by
   * every command and the app process of the project); without, with the limits set on the command's own.
   * Throws when the host refuses (the command then must not run).
   */
  static async create(
    support: CgroupSupport,
    limits: SandboxLimits,
    options: { projectId?: string } = {},
  ): Promise<CommandCgroup> {
    const name = `${process.pid}-${randomUUID()}`;
    const folders = new Map<CgroupController, { version: 1 | 2; folder: string }>();
    const cgroup = new CommandCgroup(folders);
    const { projectId } = options;
    for (let attempt = 1; ; attempt++) {
      try {
        if (projectId) await ensureProjectGroup(support, projectId, limits);
        for (const [controller, base] of Object.entries(support.controllers) as [CgroupController, ControllerBase][]) {
          const parent = projectId ? groupFolder(base, projectId) : base.folder;
          const folder = path.join(parent, name);
          if (![...folders.values()].some((f) => f.folder === folder)) await mkdir(folder);
          folders.set(controller, { version: base.version, folder });
          if (!projectId) await writeLimit(base.version, controller, folder, limits);
          if (projectId && controller === "cpu") {
            const file = path.join(parent, "cpu.stat");
            const stat = await readCounters(file);
            cgroup.cpuBaseline = {
              file,
              periods: stat.get("nr_periods") ?? 0,
              throttled: stat.get("nr_throttled") ?? 0,
            };
          }
        }
        return cgroup;
      } catch (error) {
        await cgroup.remove();
        folders.clear();
        // Another Dyno process on this host (a replica, a worker) removed the project's parent while it was empty,
        // between its making here and our folder inside it (sweepLeftovers at that process's first command): make
        // it again. Once our folder is inside, the parent is no longer empty and stays.
        const swept = projectId && (error as NodeJS.ErrnoException).code === "ENOENT";
        if (!swept || attempt >= PROJECT_GROUP_ATTEMPTS) throw error;
      }
    }
  }

  /** The cgroup.procs files a process writes its own pid into to join, before it execs the command. */
  procsFiles(): string[] {
    return [...new Set([...this.folders.values()].map((f) => path.join(f.folder, "cgroup.procs")))];
  }

  /** Whether the memory limit made the kernel kill a process of the command. */
  async memoryExceeded(): Promise<boolean> {
    const memory = this.folders.get("memory");
    if (!memory) return false;
    const file = memory.version === 1 ? "memory.oom_control" : "memory.events";
    return ((await readCounters(path.join(memory.folder, file))).get("oom_kill") ?? 0) > 0;
  }

  /** Whether a fork was refused because the command reached its process limit. */
  async processesExceeded(): Promise<boolean> {
    const pids = this.folders.get("pids");
    if (!pids) return false;
    return ((await readCounters(path.join(pids.folder, "pids.events"))).get("max") ?? 0) > 0;
  }

  /** The share of CPU periods (100 ms each) in which the CPU limit held the command back, from cpu.stat. */
  async cpuThrottledShare(): Promise<number> {
    const cpu = this.folders.get("cpu");
    if (!cpu) return 0;
    if (this.cpuBaseline) {
      // Shared with the project's other processes: an approximation, good enough to tell "held back" from "slow".
      const stat = await readCounters(this.cpuBaseline.file);
      const periods = (stat.get("nr_periods") ?? 0) - this.cpuBaseline.periods;
      return periods > 0 ? ((stat.get("nr_throttled") ?? 0) - this.cpuBaseline.throttled) / periods : 0;
    }
    const stat = await readCounters(path.join(cpu.folder, "cpu.stat"));
    const periods = stat.get("nr_periods") ?? 0;
    return periods ? (stat.get("nr_throttled") ?? 0) / periods : 0;
  }

  /** SIGKILLs every process in the cgroup (v2's cgroup.kill where it exists). */
  async kill(): Promise<void> {
    for (const { version, folder } of this.folders.values()) {
      if (version === 2) await writeFile(path.join(folder, "cgroup.kill"), "1").catch(() => {});
    }
    await killMembers(this.uniqueFolders());
  }

  /** Kills what is left and removes the folders; a cgroup only goes away once its last process has exited. */
  async remove(): Promise<void> {
    for (const folder of this.uniqueFolders().reverse()) {
      for (let attempt = 0; ; attempt++) {
        try {
          await rmdir(folder);
          break;
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === "ENOENT" || attempt >= 50) break;
          await killMembers([folder]);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }
  }

  private uniqueFolders(): string[] {
    return [...new Set([...this.folders.values()].map((f) => f.folder))];
  }
}
