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
  // The reason is short and names no address: /healthz answers anyone who reaches the app.
  const result = fetchFn(`${options.baseUrl}/health`, { signal: AbortSignal.timeout(ENGINE_PROBE_TIMEOUT_MS) }).then(
    async (response): Promise<EngineReachability> => {
      await response.body?.cancel();
      return response.ok
        ? { engine: "reachable" }
        : { engine: "unreachable", engineError: `answered ${response.status}` };
    },
    (error: unknown): EngineReachability => ({ engine: "unreachable", engineError: probeFailure(error) }),
  );
  lastProbe = { at: now, result };
  return result;
}

/** "no answer within 1 s", "ECONNREFUSED", …: what went wrong, without the engine's address. */
function probeFailure(error: unknown): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `no answer within ${ENGINE_PROBE_TIMEOUT_MS / 1000} s`;
  }
  const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof code === "string" ? code : "no connection";
}

/** Forgets the cached probe (tests). */
export function forgetEngineProbe(): void {
  lastProbe = undefined;
}

let lastDatabaseWarning = 0;

/** The database's failure in a word or two for the public body (its address and user stay out); the log has it all. */
function databaseFailure(error: unknown): string {
  if (Date.now() - lastDatabaseWarning > 30_000) {
    lastDatabaseWarning = Date.now();
    console.warn(`/healthz: the database cannot be read: ${String(error)}`);
  }
  const code = (error as { code?: unknown; cause?: { code?: unknown } } | undefined)?.code;
  const causeCode = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  const named = [code, causeCode].find((c): c is string => typeof c === "string");
  return named ? `the database cannot be read (${named})` : "the database cannot be read";
}

export async function healthReport(database: Database): Promise<{ status: number; body: Record<string, unknown> }> {
  const streams = eventStreamStats(database);
  const [databaseCheck, engine] = await Promise.all([
    database.db.execute(sql`select 1`).then(
      () => undefined,
      (error: unknown) => databaseFailure(error),
    ),
    engineReachability(),
  ]);
  const ok = databaseCheck === undefined;
  return {
    status: ok ? 200 : 503,
    body: { ok, database: database.driver, ...(ok ? {} : { error: databaseCheck }), ...engine, ...streams },
  };
}
