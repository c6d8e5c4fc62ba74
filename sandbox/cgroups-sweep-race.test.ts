/**
 * Two Dyno processes on one host (replicas, WEB_CONCURRENCY workers): one's first command sweeps empty project
 * parents away (sweepLeftovers) while the other has just made its project's parent and is about to make its
 * command's folder inside it. The command's cgroup is then made again, not failed with ENOENT (which failed a step
 * in bench:load with two workers). A stand-in v2 tree in a plain folder; the sweep is played by the mkdir mock.
 */
import { existsSync } from "node:fs";
import * as fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

const sweep = vi.hoisted(() => ({ times: 0 }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    async mkdir(folder: string, options?: { recursive?: boolean }) {
      // The command's own folder (never made recursively), inside a project's parent: sweep that parent first.
      const parent = path.dirname(folder);
      if (!options?.recursive && path.basename(parent).startsWith("project-") && sweep.times > 0) {
        sweep.times--;
        await real.rm(parent, { recursive: true });
      }
      return real.mkdir(folder, options);
    },
  };
});

const { CommandCgroup, probeCgroups } = await import("./cgroups");
const limits = { memoryBytes: 64 * 1024 * 1024, processes: 32, cpuCores: 0.5, diskBytes: 1 };

describe("a command cgroup whose project parent another process sweeps away", () => {
  let mount: string;
  beforeAll(async () => {
    mount = await fs.mkdtemp(path.join(os.tmpdir(), "dyno-cgroup-sweep-"));
    const own = path.join(mount, "app.slice");
    await fs.mkdir(own, { recursive: true });
    await fs.writeFile(path.join(own, "cgroup.controllers"), "memory pids cpu\n");
    await fs.writeFile(path.join(own, "cgroup.subtree_control"), "");
  });
  afterAll(() => fs.rm(mount, { recursive: true, force: true }));

  it("makes the parent again, with its limits, and the command's folder inside it", async () => {
    const support = await probeCgroups(`41 31 0:38 / ${mount} rw - cgroup2 cgroup2 rw`, "0::/app.slice\n");
    sweep.times = 2;
    const cgroup = await CommandCgroup.create(support, limits, { projectId: "p1" });
    expect(sweep.times).toBe(0);
    const folder = path.dirname(cgroup.procsFiles()[0]!);
    expect(existsSync(folder)).toBe(true);
    expect(path.basename(path.dirname(folder))).toBe("project-p1");
    expect(await fs.readFile(path.join(path.dirname(folder), "memory.max"), "utf8")).toBe(String(limits.memoryBytes));
  });

  it("still fails, clearly, when the parent keeps going away", async () => {
    const support = await probeCgroups(`41 31 0:38 / ${mount} rw - cgroup2 cgroup2 rw`, "0::/app.slice\n");
    sweep.times = 100;
    await expect(CommandCgroup.create(support, limits, { projectId: "p2" })).rejects.toMatchObject({ code: "ENOENT" });
    sweep.times = 0;
  });
});
