/**
 * What /healthz tells a load balancer and an operator: whether this replica
 * reaches its database (the one thing it cannot serve without: 503 when
 * not), whether the Inngest engine answers (reported, not failed on: every
 * replica shares the engine, so taking them all out of the balancer would
 * add an outage to the one the engine has), and its open streams.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client";
import { engineApiOptions, type EngineApiOptions } from "../../inngest/engine-api";
import { eventStreamStats } from "~/models/project-events.server";

export type EngineReachability =
  | { engine: "reachable" }
  | { engine: "unreachable"; engineError: string }
  /** Inngest Cloud: its health is Inngest's to report. */
  | { engine: "not checked" };

const ENGINE_PROBE_TIMEOUT_MS = 1_000;
/** A balancer polling every second asks the engine at most every 2 s per replica. */
const ENGINE_PROBE_CACHE_MS = 2_000;
const INNGEST_CLOUD_API = "https://api.inngest.com";

let lastProbe: { at: number; result: Promise<EngineReachability> } | undefined;

/** GET <engine>/health (the dev server and `inngest start` both serve it), at most once per 2 s. */
export function engineReachability(
  options: Pick<EngineApiOptions, "baseUrl"> = engineApiOptions(),
  { fetchFn = fetch, now = Date.now() }: { fetchFn?: typeof fetch; now?: number } = {},
): Promise<EngineReachability> {
  if (options.baseUrl === INNGEST_CLOUD_API) return Promise.resolve({ engine: "not checked" });
  if (lastProbe && now - lastProbe.at < ENGINE_PROBE_CACHE_MS) return lastProbe.result;
  const result = fetchFn(`${options.baseUrl}/health`, { signal: AbortSignal.timeout(ENGINE_PROBE_TIMEOUT_MS) }).then(
    async (response): Promise<EngineReachability> => {
      await response.body?.cancel();
      return response.ok
        ? { engine: "reachable" }
        : { engine: "unreachable", engineError: `${options.baseUrl}/health answered ${response.status}` };
    },
    (error: unknown): EngineReachability => ({
      engine: "unreachable",
      engineError: `${options.baseUrl}/health: ${error instanceof Error ? error.message : String(error)}`,
    }),
  );
  lastProbe = { at: now, result };
  return result;
}

/** Forgets the cached probe (tests). */
export function forgetEngineProbe(): void {
  lastProbe = undefined;
}

export async function healthReport(database: Database): Promise<{ status: number; body: Record<string, unknown> }> {
  const streams = eventStreamStats(database);
  const [databaseCheck, engine] = await Promise.all([
    database.db.execute(sql`select 1`).then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error.message : String(error)),
    ),
    engineReachability(),
  ]);
  const ok = databaseCheck === undefined;
  return {
    status: ok ? 200 : 503,
    body: { ok, database: database.driver, ...(ok ? {} : { error: databaseCheck }), ...engine, ...streams },
  };
}
