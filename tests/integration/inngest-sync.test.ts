/**
 * Who the engine calls. Against the self-hosted production engine (`inngest
 * start`, signed step calls, event keys) and an app with signing and event
 * keys (INNGEST_DEV unset): an unsigned sync naming another host (a trap
 * server on another loopback port) must leave the engine knowing only the
 * app's own URL, and a whole run's step calls must reach only the app. And
 * NODE_ENV=production with INNGEST_DEV must not start unless allowed.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Database } from "../../db/client";
import { engineApps, startEngineServer, type EngineServer } from "../../scripts/lib/engine-process";
import type { AppServer } from "../../server/app";
import { startAppProcess } from "../support/app-process";
import { reserveTestDatabase, type ReservedDatabase } from "../support/database";
import { createBuilder } from "../support/fixtures";
import { scripted, startTestModel, turn, type ReplayServer } from "../support/model";
import { freeEnginePorts } from "../support/ports";
import { waitForRunToFinish } from "../support/wait";

describe("syncing with the self-hosted engine (inngest start)", () => {
  let replay: ReplayServer;
  let reserved: ReservedDatabase;
  let database: Database;
  let engine: EngineServer;
  let app: AppServer;
  let trap: { server: Server; port: number; requests: string[] };
  const folders: string[] = [];
  const signingKey = randomBytes(32).toString("hex");
  const eventKey = randomBytes(16).toString("hex");

  beforeAll(async () => {
    const model = await startTestModel();
    replay = model.replay;
    reserved = await reserveTestDatabase();
    const dataDir = reserved.env.DYNO_DATA_DIR ?? mkdtempSync(path.join(os.tmpdir(), "dyno-sync-data-"));
    const sqliteDir = mkdtempSync(path.join(os.tmpdir(), "dyno-sync-engine-"));
    folders.push(sqliteDir, ...(reserved.env.DYNO_DATA_DIR ? [] : [dataDir]));
    const ports = await freeEnginePorts();
    engine = await startEngineServer({ bin: inject("engineBin"), eventKey, signingKey, sqliteDir, ports });

    // Production's Inngest settings: keys, no dev mode.
    delete process.env.INNGEST_DEV;
    Object.assign(process.env, reserved.env, model.env, {
      DYNO_DATA_DIR: dataDir,
      INNGEST_BASE_URL: engine.url,
      INNGEST_EVENT_KEY: eventKey,
      INNGEST_SIGNING_KEY: signingKey,
    });
    const { startAppServer } = await import("../../server/app");
    const { getDatabase } = await import("../../db");
    app = await startAppServer({ mode: "development", port: 0, watch: false });
    database = getDatabase();
    trap = await startTrap();
  });

  afterAll(async () => {
    await engine?.stop();
    await app?.close();
    await new Promise((resolve) => trap?.server.close(resolve));
    await replay?.close();
    await reserved?.release();
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });

  it("registers only the app's own URL whatever Host a sync names, and a run's step calls reach only the app", async () => {
    // The engine records every loopback URL (127.0.0.1, 0.0.0.0) as localhost.
    const ownUrl = `http://localhost:${app.port}/api/inngest`;
    // The README's sync, then forged ones naming the trap, one with a query that would turn step calls into probes.
    expect((await put(app.port, "/api/inngest", new URL(app.url).host)).status).toBe(200);
    const trapHost = `127.0.0.1:${trap.port}`;
    for (const target of ["/api/inngest", "/api/inngest?probe=trust&fnId=dyno-coding-agent"]) {
      const forged = await put(app.port, target, trapHost);
      expect(forged.body, target).not.toContain(trapHost);
    }

    const apps = await engineApps(engine.url);
    expect(apps.map((a) => a.url)).toEqual([ownUrl]);
    const stepUrls = apps.flatMap((a) => a.functions.map((f) => f.url));
    expect(stepUrls.length).toBeGreaterThanOrEqual(2);
    for (const url of stepUrls) {
      expect(url.startsWith(`${ownUrl}?`), url).toBe(true);
      expect(new URL(url).searchParams.has("probe"), url).toBe(false);
    }

    const { db } = database;
    const { startRun } = await import("../../app/models/runs.server");
    const { user, project } = await createBuilder(db);
    const model = scripted(replay, [turn.write("index.html", "<h1>Hi</h1>\n"), turn.reply("Wrote the page.")], {
      title: "Hi",
    });
    const run = await startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "a page" }, model });
    expect((await waitForRunToFinish(database, run, 60_000)).type).toBe("complete");
    expect(trap.requests).toEqual([]);
  });

  it("refuses an unsigned step call, with no stack trace in the answer", async () => {
    const response = await fetch(`${app.url}/api/inngest?fnId=dyno-coding-agent&stepId=step`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        event: { name: "agent/prompt", data: {} },
        events: [],
        steps: {},
        ctx: { run_id: "r", attempt: 0 },
      }),
    });
    const body = await response.text();
    expect(response.status).toBe(401);
    expect(body).not.toMatch(/\n\s+at /);
  });
});

describe("INNGEST_DEV in production", () => {
  const folders: string[] = [];
  afterAll(() => {
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });

  function productionEnv(): Record<string, string> {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-devprod-"));
    folders.push(dataDir);
    return {
      NODE_ENV: "production",
      SESSION_SECRET: randomBytes(24).toString("hex"),
      INNGEST_DEV: "1",
      // Embedded PGlite in a folder of its own.
      DATABASE_URL: "",
      DYNO_DATA_DIR: dataDir,
      PORT: "0",
      PREVIEW_PORT: "0",
    };
  }

  it("refuses to start, naming the variable and the override", async () => {
    const outcome = await startAppProcess(productionEnv()).catch((error: unknown) => error as Error);
    if (!(outcome instanceof Error)) {
      await outcome.kill();
      expect.fail("the app started in dev mode with NODE_ENV=production");
    }
    expect(outcome.message).toMatch(/INNGEST_DEV: refused in production[\s\S]*DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION=1/);
  });
  // With DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION=1 it starts and warns: app/env.server.test.ts checks the warning
  // (a start here would run Vite under NODE_ENV=production and re-optimize its dependency cache each time).
});

/** A PUT with the Host header given (fetch would not send a forged one). */
function put(port: number, target: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path: target, method: "PUT", headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** An HTTP server that records every request it gets: nothing of a run may ever reach it. */
async function startTrap(): Promise<{ server: Server; port: number; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(500).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, requests };
}
