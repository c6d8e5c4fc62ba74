/**
 * A Dyno process that dies (SIGKILL: no cleanup of its own) while its app process runs leaves nothing behind: under
 * bubblewrap by --die-with-parent, unisolated by the launcher noticing its stdin close. The next Dyno process finds
 * the app stopped and starts it again.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalIsolation, openLocalSandbox } from "../local";
import { getThrough, processesWith, serverScript, startDynoProcess, waitUntil } from "./test-apps";

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "dyno-orphans-test-"));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const startChild = (projectId: string, isolation: LocalIsolation, command: string) =>
  startDynoProcess(dataDir, projectId, isolation, command);

describe.each<LocalIsolation>(["bubblewrap", "none"])("a Dyno process killed while its app runs (%s)", (isolation) => {
  it("leaves no process of the app behind, and the next Dyno process starts it again", async () => {
    const projectId = randomUUID();
    const marker = `orphan-marker-${randomUUID()}`;
    const setup = await openLocalSandbox({ dataDir, projectId, isolation });
    // Unisolated, the app shares the host's network: a port of its own, so no other test's server is taken.
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    await setup.writeFile("server.js", serverScript("orphan", { port, host: "127.0.0.1" }));

    const first = startChild(projectId, isolation, `node server.js ${marker}`);
    const status = JSON.parse(await first.ready) as { state: string; port: number };
    expect(status).toMatchObject({ state: "running", port });
    expect((await processesWith(marker)).length).toBeGreaterThan(0);

    first.child.kill("SIGKILL");
    await first.exited;
    await waitUntil(async () => (await processesWith(marker)).length === 0, "no process of the app remains", 15_000);

    // This process is the next Dyno: it knows the command and starts it again.
    const next = await openLocalSandbox({ dataDir, projectId, isolation });
    expect(await next.app.status()).toMatchObject({ state: "stopped", command: `node server.js ${marker}` });
    expect(await next.app.start()).toMatchObject({ state: "running", port });
    expect((await getThrough(await next.app.endpoint())).body).toBe("orphan /");
    await next.destroy();
    expect(await processesWith(marker)).toEqual([]);
  });
});
