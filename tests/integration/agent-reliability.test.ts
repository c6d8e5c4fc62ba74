/**
 * Reliability of a run against what the outside world throws at it: text
 * Postgres cannot store (NUL bytes, invalid UTF-8) in model actions, files
 * and command output; binary files; model errors no retry can fix; and a
 * database that drops its connections for a few seconds while a step saves.
 *
 * On Postgres (DATABASE_URL) the app reaches the database through a TCP proxy
 * the test can pause, so the outage is real: connections cut, new ones refused.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPLACEMENT_CHARACTER } from "../../db/pg-safe";
import { agentEntries, messages, runEvents, runs } from "../../db/schema";
import { createBuilder } from "../support/fixtures";
import { scripted, turn, type ReplayServer } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy";
import { waitForRunToFinish } from "../support/wait";

const serverUrl = process.env.DATABASE_URL;

let stack: Stack;
let replay: ReplayServer;
let proxy: TcpProxy | undefined;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  if (serverUrl) {
    // Every connection to the test's Postgres server, the app's included, goes through the proxy.
    const target = new URL(serverUrl);
    proxy = await startTcpProxy(`tcp://${target.hostname}:${target.port || 5432}`);
    const through = new URL(serverUrl);
    through.host = new URL(proxy.url).host;
    process.env.DATABASE_URL = through.toString();
  }
  stack = await startStack({ env: { SANDBOX_COMMAND_TIMEOUT: "10s" } });
  replay = stack.replay;
  app = await import("../../app/models/runs.server");
});

afterAll(async () => {
  proxy?.resume();
  await stack?.stop();
  await proxy?.close();
  if (serverUrl) process.env.DATABASE_URL = serverUrl;
});

async function startScriptedRun(model: string) {
  const { db } = stack.database;
  const { user, project } = await createBuilder(db);
  const run = await app.startRun(db, { userId: user.id, projectId: project.id, input: { prompt: "go" }, model });
  return { run, project };
}

/** Every string in a value, object keys included. */
function stringsIn(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(stringsIn);
  if (value && typeof value === "object" && !(value instanceof Date)) {
    return Object.entries(value).flatMap(([key, item]) => [key, ...stringsIn(item)]);
  }
  return [];
}

async function rowsOf(runId: string) {
  const { db } = stack.database;
  const entries = await db
    .select()
    .from(agentEntries)
    .where(eq(agentEntries.runId, runId))
    .orderBy(asc(agentEntries.id));
  const events = await db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.id));
  const [row] = await db.select().from(runs).where(eq(runs.id, runId));
  const transcript = await db.select().from(messages).where(eq(messages.runId, runId));
  const results = entries
    .filter((e) => e.kind === "result")
    .map((e) => e.payload as { ok: boolean; content: string; summary: string });
  return { entries, events, run: row!, transcript, results };
}

describe("text Postgres cannot store does not fail a run", () => {
  it(
    "saves NUL bytes and invalid UTF-8 escaped, describes binary files and refuses a path with a NUL",
    { timeout: 120_000 },
    async () => {
      const { run, project } = await startScriptedRun(
        scripted(replay, [
          turn.write("nul.txt", "before\0after"),
          turn.run(
            "printf 'out\\000put\\n'; printf '\\211PNG\\r\\n\\032\\n\\000\\000\\000\\rIHDR' > logo.png; printf '\\000asm\\001\\000\\000\\000' > app.wasm; printf 'caf\\351 cr\\350me\\n' > latin1.txt",
          ),
          turn.read("logo.png"),
          turn.read("app.wasm"),
          turn.read("latin1.txt"),
          turn.read("a\0b.txt"),
          turn.write("x\0y.txt", "z"),
          turn.run("echo a\0b > nul-command.txt"),
          turn.reply("Done\0!"),
        ]),
      );
      const last = await waitForRunToFinish(stack.database, run, 90_000);
      expect(last.type).toBe("complete");

      const { entries, events, run: row, transcript, results } = await rowsOf(run.id);
      const R = REPLACEMENT_CHARACTER;
      // The action was saved escaped, and act writes what was saved.
      expect(readFileSync(path.join(stack.workspace(project.id), "nul.txt"), "utf8")).toBe(`before${R}after`);
      expect(results[1]).toMatchObject({ ok: true });
      expect(results[1]!.content).toContain(`out${R}put`);
      expect(results[2]).toMatchObject({
        ok: true,
        content: "logo.png: binary file, 16 bytes, type image/png. Its content cannot be shown as text.",
      });
      expect(results[3]!.content).toMatch(/^app\.wasm: binary file, 8 bytes, type application\/wasm/);
      expect(results[4]!.content).toContain(`caf${R} cr${R}me`);
      expect(results[4]!.content).toMatch(/not valid UTF-8/);
      // A NUL in a path or a command is a refused tool call: nothing is read, written or run under an escaped name.
      for (const refused of results.slice(5, 8)) {
        expect(refused).toMatchObject({ ok: false });
        expect(refused!.content).toMatch(/contains a NUL byte/);
      }
      expect(readdirSync(stack.workspace(project.id)).sort()).toEqual([
        "app.wasm",
        "latin1.txt",
        "logo.png",
        "nul.txt",
      ]);
      expect(row.error).toBeNull();
      expect(transcript.find((m) => m.role === "assistant")?.content).toBe(`Done${R}!`);
      // Nothing unstorable anywhere: every NUL became U+FFFD.
      const saved = stringsIn({ entries, events, transcript });
      expect(saved.filter((text) => text.includes("\0"))).toEqual([]);
      expect(saved.filter((text) => text.includes(R)).length).toBeGreaterThanOrEqual(8);
    },
  );
});

describe("model errors no retry can fix fail at once", () => {
  it.each([
    [
      "a refused key (401)",
      [401, 401, 401, 401, 401],
      /^The model server refused the request \(.*\): HTTP 401: Replay script "[^"]+" turn 0: injected HTTP 401/,
    ],
    [
      "an unknown model (404)",
      undefined,
      /^The model server refused the request \(.*\): HTTP 404: No replay script named "no-such-model-/,
    ],
  ])("asks the model once on %s and fails with the provider's message", async (_, errors, reason) => {
    const model = errors
      ? scripted(replay, [turn.reply("never", { errors })])
      : `openai-compatible/no-such-model-${Date.now()}`;
    const before = replay.requests;
    const { run } = await startScriptedRun(model);
    const last = await waitForRunToFinish(stack.database, run, 60_000);
    expect(last.type).toBe("failed");
    const { run: row, events } = await rowsOf(run.id);
    expect(row.error).toMatch(reason);
    expect(replay.requests - before).toBe(1);
    expect(events.filter((e) => e.type === "thinking").map((e) => e.writes)).toEqual([1]);
  });

  it("still retries a server error (500) and completes", async () => {
    const before = replay.requests;
    const { run } = await startScriptedRun(scripted(replay, [turn.reply("made it", { errors: [500, 500] })]));
    const last = await waitForRunToFinish(stack.database, run, 60_000);
    expect(last.type).toBe("complete");
    expect(replay.requests - before).toBe(3);
  });
});

describe.skipIf(!serverUrl)("a database blip while an act step saves (needs DATABASE_URL)", () => {
  it(
    "keeps the command's result and saves it once the database is back: the command runs once",
    { timeout: 180_000 },
    async () => {
      const { run, project } = await startScriptedRun(
        scripted(replay, [
          turn.run("echo ran >> count.txt && touch marker && sleep 1"),
          turn.reply("Saved after the blip."),
        ]),
      );
      const workspace = stack.workspace(project.id);
      for (let waited = 0; !existsSync(path.join(workspace, "marker")); waited += 25) {
        if (waited > 60_000) throw new Error("the command never started");
        await sleep(25);
      }
      // The command ends (and its step saves) while every database connection is cut and refused.
      proxy!.pause();
      await sleep(3_000);
      proxy!.resume();

      const last = await waitForRunToFinish(stack.database, run, 120_000);
      expect(last.type).toBe("complete");
      expect(readFileSync(path.join(workspace, "count.txt"), "utf8")).toBe("ran\n");
      const { results } = await rowsOf(run.id);
      expect(results).toEqual([expect.objectContaining({ ok: true, summary: "Exit code 0" })]);
    },
  );
});
