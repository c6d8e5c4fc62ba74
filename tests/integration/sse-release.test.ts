/**
 * Event streams are released when their clients go, however long they were
 * open and whatever the garbage collector did meanwhile. Remix hands a loader
 * a Request whose signal follows the adapter's through weak references (one
 * per intermediate Request, undici's design); once those Requests are
 * collected the signal never fires (nodejs/node#55428, undici#3644). Streams
 * open a second or two rarely see a major GC, so only long-lived ones leaked.
 * Here many clients stay open while events are written and full collections
 * are forced, with the app in this process (so gc() reaches it and the test
 * sees its database handle), served by Vite (development) and by the
 * `remix vite:build` output (production).
 */
import { spawn } from "node:child_process";
import http from "node:http";
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { appendRunEvent } from "../../db/run-events";
import type { AppServer } from "../../server/app";
import { signedInCookie } from "../support/accounts";
import { reserveTestDatabase, type ReservedDatabase } from "../support/database";
import { createBuilder, createQueuedRun } from "../support/fixtures";
import { SseParser, type SseMessage } from "../support/sse";

const CLIENTS = 120;
const HOLD_ROUNDS = 12;

let reserved: ReservedDatabase;
let gc: () => void;

beforeAll(async () => {
  // The flag is read when a context is created: a fresh one exposes gc() even
  // though this fork started without --expose-gc.
  v8.setFlagsFromString("--expose-gc");
  gc = vm.runInNewContext("gc") as () => void;
  reserved = await reserveTestDatabase();
  // No periodic reconcile: the test counts the app's reads while streams are open.
  Object.assign(process.env, reserved.env, { PREVIEW_PORT: "0", RUN_RECONCILE_INTERVAL: "0s" });
  // Production mode serves build/: build it from this checkout, so it is the code under test.
  await runCommand("npm", ["run", "build"]);
});

afterAll(async () => {
  await reserved?.release();
});

function runCommand(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} failed (${code}):\n${output}`)),
    );
  });
}

interface RawClient {
  /** Run-event ids received so far. */
  runEventIds: number[];
  waitFor(predicate: (messages: SseMessage[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Destroys the socket, as a closed tab does; independent of any AbortSignal or GC. */
  close(): void;
}

/** An SSE client on a socket of its own (node:http, no keep-alive pool), so closing it really closes the connection. */
function connect(url: string, cookie: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const messages: SseMessage[] = [];
    const waiters = new Set<() => void>();
    const request = http.get(
      url,
      { agent: false, headers: { Accept: "text/event-stream", Cookie: cookie } },
      (response) => {
        if (response.statusCode !== 200) return reject(new Error(`events answered ${response.statusCode}`));
        const parser = new SseParser();
        response.setEncoding("utf8");
        response.on("data", (text: string) => {
          messages.push(...parser.push(text));
          for (const wake of waiters) wake();
        });
        response.on("error", () => {});
        resolve({
          get runEventIds() {
            return messages.filter((m) => m.event === "run-event").map((m) => Number(m.id));
          },
          waitFor(predicate, timeoutMs = 20_000) {
            return new Promise<void>((done, fail) => {
              const check = () => {
                if (!predicate(messages)) return;
                clearTimeout(timer);
                waiters.delete(check);
                done();
              };
              const timer = setTimeout(() => {
                waiters.delete(check);
                fail(new Error(`no matching event-stream message within ${timeoutMs} ms`));
              }, timeoutMs);
              waiters.add(check);
              check();
            });
          },
          close: () => request.destroy(),
        });
      },
    );
    request.on("error", (error) => reject(error));
  });
}

async function health(app: AppServer): Promise<{ eventStreams: number; runEventWatchers: number }> {
  return (await fetch(`${app.url}/healthz`)).json();
}

/** Counts reads the app makes on the shared database handle (subscriptions read run_events with select()). */
function countSelects(database: Database) {
  const db = database.db;
  const select = db.select;
  let count = 0;
  db.select = ((...args: Parameters<typeof select>) => {
    count += 1;
    return select.apply(db, args);
  }) as typeof select;
  return {
    get count() {
      return count;
    },
    restore: () => {
      db.select = select;
    },
  };
}

describe.each(["development", "production"] as const)("event streams in %s mode", (mode) => {
  let app: AppServer;
  let database: Database;

  beforeAll(async () => {
    const { startAppServer } = await import("../../server/app");
    const { getDatabase } = await import("../../db");
    app = await startAppServer({ mode, port: 0, watch: false });
    database = getDatabase();
  });

  afterAll(async () => {
    await app?.close();
  });

  it(`releases every one of ${CLIENTS} long-lived streams after GC, and dead streams run no queries`, async () => {
    const { db } = database;
    const { user, project } = await createBuilder(db);
    const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
    const cookie = await signedInCookie(user.id);
    const append = async (type: string) => (await appendRunEvent(db, { runId: run.id, projectId: project.id, type }))!;
    const url = `${app.url}/projects/${project.id}/events`;
    await expect.poll(() => health(app)).toMatchObject({ eventStreams: 0, runEventWatchers: 0 });

    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect(url, cookie)));
    await Promise.all(clients.map((c) => c.waitFor((messages) => messages.length > 0)));
    expect(await health(app)).toMatchObject({ eventStreams: CLIENTS, runEventWatchers: CLIENTS, runEventFeeds: 1 });

    // Held open while events are written, the way a run fans out to open tabs,
    // with full collections in between: the handler's Requests become garbage.
    // All the streams share one read per row (decision 028), not one each.
    const reads = countSelects(database);
    try {
      for (let round = 0; round < HOLD_ROUNDS; round += 1) {
        const row = await append(`step-${round}`);
        await Promise.all(clients.map((c) => c.waitFor(() => c.runEventIds.includes(row.id))));
        gc();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      expect(reads.count).toBe(HOLD_ROUNDS);
    } finally {
      reads.restore();
    }
    gc();

    for (const client of clients) client.close();
    await expect
      .poll(() => health(app), { timeout: 15_000 })
      .toMatchObject({ eventStreams: 0, runEventWatchers: 0, runEventFeeds: 0 });

    // A new event of the project wakes nothing: no stream is left to read it.
    const selects = countSelects(database);
    try {
      await append("after-close");
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(selects.count).toBe(0);
    } finally {
      selects.restore();
    }
  }, 120_000);
});
