/**
 * One app process per project per host, whichever Dyno process (replica) asks: a second process sees the app that
 * another runs, reaches it through the same socket, restarts and stops it there (never a second dev server), reads
 * its log as it is written, adds browser lines to it and keeps it from idling; when the owner dies, the next process
 * to ask starts it itself. The owner is a real child process (orphan-child.ts), the other one is this test.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openLocalSandbox } from "../local";
import type { Sandbox } from "../types";
import { askOwner, controlKey, ownerAddress } from "./ownership";
import { getThrough, processesWith, serverScript, startDynoProcess, waitUntil } from "./test-apps";

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "dyno-replicas-test-"));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

/** Another Dyno process on this host that starts the project's app and keeps running it. */
const startOwner = (projectId: string, command: string, idleTimeoutMs?: number) =>
  startDynoProcess(dataDir, projectId, "bubblewrap", command, idleTimeoutMs);

/** The pids of the app's own server process (node server.js <marker>), not bwrap's or the launcher's. */
const serverPids = (marker: string) => processesWith(`server.js ${marker}`, "node");

describe("an app process run by another Dyno process on this host", () => {
  let here: Sandbox;
  let owner: ReturnType<typeof startOwner>;
  const projectId = randomUUID();
  const marker = `replica-marker-${randomUUID()}`;

  beforeAll(async () => {
    here = await openLocalSandbox({ dataDir, projectId, app: { idleTimeoutMs: 1_500 } });
    await here.writeFile("server.js", serverScript("shared", { port: 4100, host: "127.0.0.1" }));
    owner = startOwner(projectId, `node server.js ${marker}`);
    expect(JSON.parse(await owner.ready)).toMatchObject({ state: "running", port: 4100 });
  });

  afterAll(async () => {
    owner?.child.kill("SIGKILL");
    await owner?.exited;
    await here?.destroy();
  });

  it("is seen running from here, with its port, and answers through the same socket", async () => {
    expect(await here.app.status()).toMatchObject({
      state: "running",
      port: 4100,
      command: `node server.js ${marker}`,
    });
    expect(await getThrough(await here.app.endpoint(), "/through")).toEqual({ status: 200, body: "shared /through" });
    expect(await serverPids(marker)).toHaveLength(1);
  });

  it("starts nothing new when asked to start here, and restarts it in the owner when asked to restart", async () => {
    const [before] = await serverPids(marker);
    expect(await here.app.start()).toMatchObject({ state: "running", port: 4100 });
    expect(await serverPids(marker)).toEqual([before]);

    expect(await here.app.restart()).toMatchObject({ state: "running", port: 4100 });
    const after = await serverPids(marker);
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before);
    expect((await getThrough(await here.app.endpoint())).body).toBe("shared /");
  });

  it("reads the log as the owner writes it, and adds the preview's browser errors to it", async () => {
    const all = (await here.app.logs()).lines.map((l) => `${l.stream}: ${l.text}`);
    expect(all).toContain(`system: started \`node server.js ${marker}\``);
    expect(all).toContain("system: listening on port 4100");
    const { nextSeq } = await here.app.logs({ maxLines: 1 });
    await here.app.appendLog("browser", `Uncaught TypeError: from a replica ${marker}`);
    // No flush to disk in between: the owner answers with what it holds.
    const { lines } = await here.app.logs({ sinceSeq: nextSeq });
    expect(lines.map((l) => `${l.stream}: ${l.text}`)).toEqual([
      `browser: Uncaught TypeError: from a replica ${marker}`,
    ]);
  });

  it("refuses a request without the data folder's key", async () => {
    const wrongKey = Buffer.alloc(32, 7);
    await expect(askOwner(ownerAddress(dataDir, projectId), wrongKey, { op: "stop" })).rejects.toThrow(/wrong key/);
    expect(await here.app.status()).toMatchObject({ state: "running" });
    // The right key is what this process read from the data folder.
    expect(controlKey(dataDir)).toHaveLength(32);
  });

  it("is stopped from here in the owner, and started from here afterwards (this process then owns it)", async () => {
    expect(await here.app.stop("stopped by the builder")).toMatchObject({
      state: "stopped",
      reason: "stopped by the builder",
    });
    await waitUntil(async () => (await serverPids(marker)).length === 0, "the owner's app is gone");
    expect(await here.app.start()).toMatchObject({ state: "running", port: 4100 });
    expect(await serverPids(marker)).toHaveLength(1);
    // The other process now forwards to this one: still one app.
    await here.app.stop();
  });

  it("is started here again when the process that ran it dies", async () => {
    const second = startOwner(projectId, `node server.js ${marker}`);
    expect(JSON.parse(await second.ready)).toMatchObject({ state: "running" });
    second.child.kill("SIGKILL");
    await second.exited;
    await waitUntil(async () => (await serverPids(marker)).length === 0, "the app died with its owner", 15_000);
    expect(await here.app.status()).toMatchObject({ state: "stopped", command: `node server.js ${marker}` });
    expect(await here.app.start()).toMatchObject({ state: "running", port: 4100 });
    expect((await getThrough(await here.app.endpoint())).body).toBe("shared /");
    await here.app.stop();
  });

  it("is kept from idling by activity that reaches another process, and idles once that stops", async () => {
    const third = startOwner(projectId, `node server.js ${marker}`, 1_500);
    try {
      expect(JSON.parse(await third.ready)).toMatchObject({ state: "running" });
      // Preview requests landing here for 3 s, twice the owner's idle timeout: it keeps serving.
      const touches = setInterval(() => here.app.touch(), 100);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      clearInterval(touches);
      expect(await here.app.status()).toMatchObject({ state: "running" });
      // Nothing more: the owner stops it as idle.
      const idle = await waitUntil(
        async () => {
          const status = await here.app.status();
          return status.state === "stopped" ? status : undefined;
        },
        "the owner stopped its idle app",
        10_000,
      );
      expect(idle.reason).toMatch(/^idle for/);
    } finally {
      third.child.kill("SIGKILL");
      await third.exited;
    }
  });
});
