/**
 * What the Inngest engine knows about our runs, read from its REST API
 * (dev server, self-hosted `inngest start`, Inngest Cloud alike). Only what
 * the engine says for certain is reported; anything else (the engine down, an
 * error, a status it reports unreliably) throws or counts as still running.
 *
 * Found by reading the engine's source (v1.13.5, pkg/api/apiv1) and trying it:
 * - An event is found by our id (the run id we send as the event id) only by
 *   listing `agent/prompt` events (the API looks events up by its own ULID);
 *   the list defaults to the last hour, so the window is always given.
 * - Errors often come back as HTTP 200 with `{ error, status }` in the body.
 * - A run's "Completed" is not trustworthy with checkpointing (the trace
 *   view says Completed while it runs, the run view says Running after it
 *   ended); "Failed" and "Cancelled" come with `ended_at` and are.
 * - A live run always has a queue item (`/v1/runs/<id>/jobs`: the step being
 *   run holds a lease, a retry or a run waiting for its concurrency slot is
 *   queued). `inngest start --sqlite-dir` restarted with an in-memory queue
 *   keeps the run's history ("Running") and no item: it will never run again.
 */
import { createHash } from "node:crypto";
import { env, isInngestDev, type Env } from "../app/env.server";

export interface EngineApiOptions {
  baseUrl: string;
  /** Wait before the second look at a run with nothing queued (the engine caches that answer for 5 s). */
  confirmOrphanMs?: number;
  /** Sent hashed as Bearer (what the SDK does); the dev server needs none. */
  signingKey?: string;
  fetch?: typeof fetch;
  /** Per request: an engine that hangs is an engine that cannot answer. */
  timeoutMs?: number;
}

/** What the engine says about one run. */
export type EngineRunState =
  /** It has no `agent/prompt` event for the run: it cannot run it (restarted with empty state, another engine). */
  | { kind: "unknown" }
  /**
   * Queued, running, or not scheduled yet. `retry`: a step failed (the app
   * was down, the database away) and the engine will call again at `at`;
   * `attempt` counts from 1, so the first retry is attempt 2.
   */
  | { kind: "active"; retry?: { attempt: number; at: Date } }
  /** It gave the run up or cancelled it, at `endedAt`. */
  | { kind: "ended"; status: "Failed" | "Cancelled"; endedAt: Date }
  /** It lists the run as running but has nothing queued to run it, on two looks (restarted without its queue). */
  | { kind: "orphaned" };

export class EngineApiError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EngineApiError";
  }
}

interface EngineEvent {
  internal_id: string;
  id?: string;
}
interface EngineJob {
  at?: string;
  /** 0 for a first try. */
  attempt?: number;
}
interface EngineEventRun {
  run_id: string;
  status?: string;
  ended_at?: string | null;
}

const PAGE = 50; // the API's maximum is 51
const MAX_PAGES = 200;

/** The engine's API address, the same one the SDK sends events to. */
export function engineApiOptions(config: Env = env()): EngineApiOptions {
  const devUrl = /^https?:\/\//.test(config.INNGEST_DEV ?? "") ? config.INNGEST_DEV : undefined;
  const baseUrl =
    config.INNGEST_BASE_URL ?? devUrl ?? (isInngestDev(config) ? "http://127.0.0.1:8288" : "https://api.inngest.com");
  return { baseUrl: baseUrl.replace(/\/+$/, ""), signingKey: config.INNGEST_SIGNING_KEY };
}

export function hashSigningKey(key: string): string {
  const prefix = /^signkey-\w+-/.exec(key)?.[0] ?? "";
  return `${prefix}${createHash("sha256")
    .update(Buffer.from(key.slice(prefix.length), "hex"))
    .digest("hex")}`;
}

export function createEngineApi({
  baseUrl,
  signingKey,
  fetch: fetchFn = fetch,
  timeoutMs = 5_000,
  confirmOrphanMs = 6_000,
}: EngineApiOptions) {
  const headers: Record<string, string> = signingKey ? { authorization: `Bearer ${hashSigningKey(signingKey)}` } : {};

  async function get<T>(path: string): Promise<T> {
    let response: Response;
    let body: { data?: T; error?: string; status?: number };
    try {
      response = await fetchFn(`${baseUrl}${path}`, { headers, signal: AbortSignal.timeout(timeoutMs) });
      body = (await response.json()) as typeof body;
    } catch (error) {
      throw new EngineApiError(`the engine did not answer ${path}: ${String(error)}`, { cause: error });
    }
    const status = body.status ?? response.status;
    if (!response.ok || status >= 400 || body.data === undefined) {
      throw new EngineApiError(`the engine answered ${path} with ${status}: ${body.error ?? "no data"}`);
    }
    return body.data;
  }

  /** Internal ids of the `agent/prompt` events received since `since`, by our event id. */
  async function promptEvents(since: Date): Promise<Map<string, string[]>> {
    const found = new Map<string, string[]>();
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query = new URLSearchParams({
        name: "agent/prompt",
        received_after: since.toISOString(),
        limit: String(PAGE),
      });
      if (cursor) query.set("cursor", cursor);
      const events = (await get<EngineEvent[] | null>(`/v1/events?${query}`)) ?? [];
      for (const event of events) {
        if (event.id) found.set(event.id, [...(found.get(event.id) ?? []), event.internal_id]);
      }
      const last = events.at(-1)?.internal_id;
      if (events.length < PAGE || !last || last === cursor) return found;
      cursor = last;
    }
    throw new EngineApiError(`more than ${PAGE * MAX_PAGES} agent/prompt events since ${since.toISOString()}`);
  }

  /** The queue items of these engine runs; undefined when the engine cannot say (e.g. no such API). */
  async function queuedJobs(engineRunIds: string[]): Promise<EngineJob[] | undefined> {
    try {
      const jobs: EngineJob[] = [];
      for (const id of engineRunIds) jobs.push(...((await get<EngineJob[] | null>(`/v1/runs/${id}/jobs`)) ?? []));
      return jobs;
    } catch {
      return undefined;
    }
  }

  /** A queued retry, if one of the jobs is one. */
  function retryOf(jobs: EngineJob[]): { attempt: number; at: Date } | undefined {
    const retry = jobs
      .filter((j) => typeof j.attempt === "number" && j.attempt > 0)
      .sort((a, b) => b.attempt! - a.attempt!)[0];
    const at = retry?.at ? new Date(retry.at) : undefined;
    return retry && at && !Number.isNaN(at.getTime()) ? { attempt: retry.attempt! + 1, at } : undefined;
  }

  function stateOf(runs: EngineEventRun[]): EngineRunState {
    // No run yet (not scheduled) or any run not positively ended: the engine still has it.
    if (runs.length === 0) return { kind: "active" };
    let last: EngineRunState | undefined;
    for (const run of runs) {
      const endedAt = run.ended_at ? new Date(run.ended_at) : undefined;
      if ((run.status !== "Failed" && run.status !== "Cancelled") || !endedAt || Number.isNaN(endedAt.getTime())) {
        return { kind: "active" };
      }
      if (!last || (last.kind === "ended" && endedAt > last.endedAt))
        last = { kind: "ended", status: run.status, endedAt };
    }
    return last!;
  }

  return {
    /**
     * The engine's word on each run (by our run id), for runs created after
     * `since`. Throws EngineApiError when the engine cannot answer for all of them.
     */
    async runStates(runIds: string[], since: Date): Promise<Map<string, EngineRunState>> {
      const events = await promptEvents(since);
      const states = new Map<string, EngineRunState>();
      const idle = new Map<string, string[]>();
      for (const runId of runIds) {
        const internalIds = events.get(runId);
        if (!internalIds) {
          states.set(runId, { kind: "unknown" });
          continue;
        }
        const runs: EngineEventRun[] = [];
        for (const internalId of internalIds)
          runs.push(...((await get<EngineEventRun[] | null>(`/v1/events/${internalId}/runs`)) ?? []));
        const state = stateOf(runs);
        states.set(runId, state);
        const engineRunIds = runs.map((r) => r.run_id);
        if (state.kind !== "active" || engineRunIds.length === 0) continue;
        const jobs = await queuedJobs(engineRunIds);
        if (jobs?.length === 0) idle.set(runId, engineRunIds);
        else if (jobs) states.set(runId, { kind: "active", retry: retryOf(jobs) });
      }
      // Nothing queued on two looks apart: not a step changing hands, a run the engine will never run.
      if (idle.size > 0) {
        await new Promise((resolve) => setTimeout(resolve, confirmOrphanMs));
        for (const [runId, engineRunIds] of idle) {
          if ((await queuedJobs(engineRunIds))?.length === 0) states.set(runId, { kind: "orphaned" });
        }
      }
      return states;
    },
  };
}

export type EngineApi = ReturnType<typeof createEngineApi>;
