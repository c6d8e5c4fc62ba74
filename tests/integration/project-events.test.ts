/**
 * The builder page's live event stream over real HTTP: GET
 * /projects/:projectId/events on the app server (Express, Remix, the Vite
 * module graph), reading the app's own database. Replays from `after` and
 * from Last-Event-ID, then streams rows as they commit; owner only; every
 * stream is cleaned up when its client goes.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendRunEvent } from "../../db/run-events";
import type { RunEvent } from "../../db/schema";
import { signedInCookie } from "../support/accounts";
import { createBuilder, createQueuedRun } from "../support/fixtures";
import { connectEventStream, type EventStreamClient } from "../support/sse";
import { startStack, type Stack } from "../support/stack";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  console.log(`[project-events] ${stack.database.driver} database, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

/** A builder with a project, a run in it, and a signed-in cookie. */
async function builder() {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  const run = await createQueuedRun(db, { userId: user.id, projectId: project.id });
  const cookie = await signedInCookie(user.id);
  const append = async (type: string, data: Record<string, unknown> = {}): Promise<RunEvent> =>
    (await appendRunEvent(db, { runId: run.id, projectId: project.id, type, data }))!;
  return { user, project, run, cookie, append };
}

const eventsUrl = (projectId: string, query = "") => `${stack.app.url}/projects/${projectId}/events${query}`;

/** The run events a client receives, by id, until `last` arrives. */
async function runEventIdsUntil(client: EventStreamClient, last: number): Promise<number[]> {
  const ids: number[] = [];
  for (;;) {
    const message = await client.nextOf("run-event");
    const id = Number(message.id);
    expect(JSON.parse(message.data).id).toBe(id);
    ids.push(id);
    if (id >= last) return ids;
  }
}

async function health(): Promise<{ eventStreams: number; runEventWatchers: number }> {
  return (await fetch(`${stack.app.url}/healthz`)).json();
}

describe("GET /projects/:projectId/events", () => {
  it("replays the rows after ?after=, in order, then only new ones", async () => {
    const { project, cookie, append } = await builder();
    const rows = [await append("a"), await append("b"), await append("c"), await append("d")];

    const client = await connectEventStream(eventsUrl(project.id, `?after=${rows[1]!.id}`), { cookie });
    try {
      expect(client.response.status).toBe(200);
      expect(client.response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
      expect(await runEventIdsUntil(client, rows[3]!.id)).toEqual([rows[2]!.id, rows[3]!.id]);
      // Nothing repeats: the next run event is the next row written.
      const marker = await append("e");
      expect(await runEventIdsUntil(client, marker.id)).toEqual([marker.id]);
    } finally {
      client.close();
    }
  });

  it("resumes after Last-Event-ID, preferring it over ?after=", async () => {
    const { project, cookie, append } = await builder();
    const rows = [await append("a"), await append("b"), await append("c")];

    const client = await connectEventStream(eventsUrl(project.id, "?after=0"), { cookie, lastEventId: rows[1]!.id });
    try {
      expect(await runEventIdsUntil(client, rows[2]!.id)).toEqual([rows[2]!.id]);
      const marker = await append("d");
      expect(await runEventIdsUntil(client, marker.id)).toEqual([marker.id]);
    } finally {
      client.close();
    }
  });

  it("starts with a heartbeat that carries no id, then delivers rows as they commit, and only this project's", async () => {
    const { project, run, cookie, append } = await builder();
    const other = await builder();

    const client = await connectEventStream(eventsUrl(project.id), { cookie });
    try {
      expect(await client.next()).toEqual({ id: undefined, event: "heartbeat", data: "{}" });
      await other.append("elsewhere");
      const row = await append("tool_call", { tool: "write_file", description: "Writing index.html" });
      const message = await client.nextOf("run-event");
      expect(message.id).toBe(String(row.id));
      expect(JSON.parse(message.data)).toEqual({
        id: row.id,
        runId: run.id,
        type: "tool_call",
        data: { tool: "write_file", description: "Writing index.html" },
        createdAt: row.createdAt.toISOString(),
      });
      expect(client.pending().filter((m) => m.event === "run-event")).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("answers 401 without a session", async () => {
    const { project } = await builder();
    const client = await connectEventStream(eventsUrl(project.id));
    expect(client.response.status).toBe(401);
    client.close();
  });

  it("answers 404 for another builder's project, an unknown project and a non-uuid id", async () => {
    const { cookie } = await builder();
    const other = await builder();
    for (const id of [other.project.id, randomUUID(), "not-a-uuid"]) {
      const client = await connectEventStream(eventsUrl(id), { cookie });
      expect(client.response.status, id).toBe(404);
      client.close();
    }
  });

  it("answers 400 for a bad start", async () => {
    const { project, cookie } = await builder();
    for (const [query, lastEventId] of [
      ["?after=-1", undefined],
      ["?after=abc", undefined],
      ["", "1.5"],
    ] as const) {
      const client = await connectEventStream(eventsUrl(project.id, query), { cookie, lastEventId });
      expect(client.response.status, `${query} ${lastEventId}`).toBe(400);
      client.close();
    }
  });

  it("closes every stream whose client goes: no open streams or run-event watchers are left", async () => {
    const { project, cookie, append } = await builder();
    await expect.poll(health).toMatchObject({ eventStreams: 0, runEventWatchers: 0 });

    const clients = await Promise.all(
      Array.from({ length: 5 }, () => connectEventStream(eventsUrl(project.id), { cookie })),
    );
    await Promise.all(clients.map((c) => c.next()));
    await expect.poll(health).toMatchObject({ eventStreams: 5, runEventWatchers: 5 });

    // A row written while they are open reaches every one of them.
    const row = await append("x");
    for (const client of clients) expect((await client.nextOf("run-event")).id).toBe(String(row.id));

    for (const client of clients) client.close();
    await expect.poll(health, { timeout: 10_000 }).toMatchObject({ eventStreams: 0, runEventWatchers: 0 });
  });
});
