/**
 * /healthz and /metrics on the app server, through a real run (real engine,
 * BAML against the replay stand-in, local sandbox): the health report names
 * the database and the engine; the metrics need the bearer token and then
 * count the run's steps, its model tokens, a command stopped by its timeout
 * and the runs by status.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunToFinish } from "../support/wait";

const TOKEN = "metrics-token-for-the-test-0123456789";
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ env: { METRICS_TOKEN: TOKEN } });
});

afterAll(async () => {
  await stack?.stop();
});

const scrape = (authorization?: string) =>
  fetch(`${stack.app.url}/metrics`, { headers: authorization ? { authorization } : {} });

/** The value of one series in Prometheus' text format, e.g. series(text, 'dyno_runs{status="complete"}'). */
function series(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe("health and metrics", () => {
  it("reports the database and the engine on /healthz", async () => {
    const response = await fetch(`${stack.app.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      ok: true,
      database: stack.database.driver,
      engine: "reachable",
      eventStreams: expect.any(Number),
    });
  });

  it("serves /metrics only with the token, then counts a run's steps, tokens, limits and status", async () => {
    expect((await scrape()).status).toBe(401);
    expect((await scrape("Bearer not-the-token-at-all-no")).status).toBe(401);
    expect((await scrape(`Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}`)).status).toBe(401);
    const before = await (await scrape(`Bearer ${TOKEN}`)).text();

    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const runsApi = await import("../../app/models/runs.server");
    const model = scripted(stack.replay, [
      turn.write("a.txt", "a"),
      { reply: { tool: "run_command", command: "sleep 30", timeout_seconds: 1 } },
      turn.reply("Done."),
    ]);
    const run = await runsApi.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "count" },
      model,
    });
    expect((await waitForRunToFinish(stack.database, run, 60_000)).type).toBe("complete");

    const response = await scrape(`Bearer ${TOKEN}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const after = await response.text();
    const grew = (name: string) => (series(after, name) ?? 0) - (series(before, name) ?? 0);
    // start, think-1..3, act-1..2, finish (and the title): each timed once, as it ran.
    expect(grew('dyno_agent_step_duration_seconds_count{step="think",outcome="ok"}')).toBe(3);
    expect(grew('dyno_agent_step_duration_seconds_count{step="act",outcome="ok"}')).toBe(2);
    expect(grew('dyno_agent_step_duration_seconds_count{step="start",outcome="ok"}')).toBe(1);
    expect(grew('dyno_agent_step_duration_seconds_count{step="finish",outcome="ok"}')).toBe(1);
    // The command's step waited out its 1 s timeout: the acts' time says so.
    expect(grew('dyno_agent_step_duration_seconds_sum{step="act",outcome="ok"}')).toBeGreaterThanOrEqual(1);
    expect(grew('dyno_agent_step_duration_seconds_bucket{le="+Inf",step="act",outcome="ok"}')).toBe(2);
    expect(grew('dyno_model_tokens_total{call="next_action",direction="input"}')).toBeGreaterThan(0);
    expect(grew('dyno_model_tokens_total{call="next_action",direction="output"}')).toBeGreaterThan(0);
    expect(grew('dyno_sandbox_limit_hits_total{limit="timeout",process="command"}')).toBe(1);
    expect(series(after, 'dyno_runs{status="complete"}')).toBeGreaterThanOrEqual(1);
    expect(series(after, 'dyno_runs{status="running"}')).toBe(0);
    expect(series(after, "dyno_database_up")).toBe(1);
    expect(series(after, 'dyno_sse_clients{stream="events"}')).toBe(0);
    expect(after).toContain("dyno_process_resident_memory_bytes");
  });
});
