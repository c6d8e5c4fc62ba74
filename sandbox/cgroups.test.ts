import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandCgroup, parseMountinfo, parseProcCgroup, probeCgroups } from "./cgroups";

describe("reading the host's cgroup layout", () => {
  it("finds v1 hierarchies with their controllers and the unified v2 one", () => {
    const mountinfo = [
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct",
      "35 31 0:32 /kubepods /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
      "50 23 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw",
    ].join("\n");
    expect(parseMountinfo(mountinfo)).toEqual([
      { version: 1, mountPoint: "/sys/fs/cgroup/cpu,cpuacct", root: "/", controllers: ["rw", "cpu", "cpuacct"] },
      { version: 1, mountPoint: "/sys/fs/cgroup/memory", root: "/kubepods", controllers: ["rw", "memory"] },
      { version: 2, mountPoint: "/sys/fs/cgroup/unified", root: "/", controllers: [] },
      { version: 2, mountPoint: "/mnt/with space", root: "/", controllers: [] },
    ]);
  });

  it("reads the process's cgroup per controller", () => {
    const own = parseProcCgroup(
      "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/user.slice/app.service\n",
    );
    expect(own.get("memory")).toBe("/process_api/abc");
    expect(own.get("cpu")).toBe("/");
    expect(own.get("cpuacct")).toBe("/");
    expect(own.get("")).toBe("/user.slice/app.service");
  });
});

describe("a cgroup v2 host", () => {
  // A stand-in v2 tree in a plain folder: it checks which files get which values, not the kernel.
  let mount: string;

  beforeAll(async () => {
    mount = await mkdtemp(path.join(os.tmpdir(), "dyno-cgroup2-"));
    const own = path.join(mount, "app.slice");
    await mkdir(own, { recursive: true });
    await writeFile(path.join(own, "cgroup.controllers"), "cpuset cpu io memory pids\n");
    await writeFile(path.join(own, "cgroup.subtree_control"), "");
  });

  afterAll(async () => {
    await rm(mount, { recursive: true, force: true });
  });

  it("makes one command cgroup below the app's own with every limit set", async () => {
    const support = await probeCgroups(`41 31 0:38 / ${mount} rw - cgroup2 cgroup2 rw`, "0::/app.slice\n");
    const base = path.join(mount, "app.slice", "dyno");
    expect(support.controllers).toEqual({
      memory: { version: 2, folder: base },
      pids: { version: 2, folder: base },
      cpu: { version: 2, folder: base },
    });
    const cgroup = await CommandCgroup.create(support, {
      memoryBytes: 64 * 1024 * 1024,
      processes: 32,
      cpuCores: 0.5,
      diskBytes: 1,
    });
    const [procs] = cgroup.procsFiles();
    expect(cgroup.procsFiles()).toHaveLength(1);
    const folder = path.dirname(procs!);
    expect(path.dirname(folder)).toBe(base);
    const read = (file: string) => readFile(path.join(folder, file), "utf8");
    expect(await read("memory.max")).toBe(String(64 * 1024 * 1024));
    expect(await read("memory.swap.max")).toBe("0");
    expect(await read("pids.max")).toBe("32");
    expect(await read("cpu.max")).toBe("50000 100000");

    await writeFile(path.join(folder, "memory.events"), "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n");
    await writeFile(path.join(folder, "pids.events"), "max 0\n");
    await writeFile(
      path.join(folder, "cpu.stat"),
      "usage_usec 100\nnr_periods 10\nnr_throttled 8\nthrottled_usec 700000\n",
    );
    expect(await cgroup.memoryExceeded()).toBe(true);
    expect(await cgroup.processesExceeded()).toBe(false);
    expect(await cgroup.cpuThrottledShare()).toBe(0.8);
  });

  it("says why when the app's cgroup does not delegate a controller", async () => {
    const support = await probeCgroups(`41 31 0:38 / ${mount} rw - cgroup2 cgroup2 rw`, "0::/elsewhere\n");
    expect(support.controllers).toEqual({});
    expect(support.missing.memory).toMatch(/cgroup v2 memory: cannot enable it below/);
  });
});
