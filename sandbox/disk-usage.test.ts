import { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diskUsage } from "./disk-usage";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-disk-usage-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Counts the processes this process starts while `fn` runs (every spawn goes through ChildProcess#spawn). */
async function spawnsDuring(fn: () => Promise<unknown>): Promise<number> {
  const prototype = ChildProcess.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
  const original = prototype.spawn;
  let spawned = 0;
  prototype.spawn = function (this: unknown, ...args: unknown[]) {
    spawned++;
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    prototype.spawn = original;
  }
  return spawned;
}

describe("diskUsage", () => {
  it("measures each folder in order, a missing or odd-named one as 0 beside the others", async () => {
    const big = path.join(root, "big one's $dir");
    const small = path.join(root, "small");
    await mkdir(big);
    await mkdir(small);
    await writeFile(path.join(big, "data"), Buffer.alloc(2 * 1024 * 1024, 1));
    const [bigBytes, missing, smallBytes] = await diskUsage([big, path.join(root, "missing"), small]);
    expect(bigBytes).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    expect(missing).toBe(0);
    expect(smallBytes).toBeGreaterThan(0);
    expect(smallBytes).toBeLessThan(64 * 1024);
  });

  it("forks no process from the app per measurement: one long-lived shell serves a project's checks", async () => {
    const folder = path.join(root, "project");
    await mkdir(folder);
    await diskUsage([folder]);
    const spawned = await spawnsDuring(async () => {
      for (let i = 0; i < 5; i++) await diskUsage([folder]);
    });
    expect(spawned).toBe(0);
  });
});
