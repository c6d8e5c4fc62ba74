/**
 * GET /metrics in Prometheus' text format, behind METRICS_TOKEN (a bearer
 * token; unset, the endpoint is off and answers 404).
 *
 * Two kinds of series: this process's own (metrics/registry.ts: step
 * durations, model tokens, sandbox limits hit, Node's CPU, memory and event
 * loop), which Prometheus adds up across replicas; and what the database
 * knows for all of them (runs and webhook deliveries by status), read here at
 * scrape time and the same from every replica (aggregate those with max, not
 * sum). Open streams are this process's.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { count } from "drizzle-orm";
import { Gauge, Registry } from "prom-client";
import type { Database } from "../../db/client";
import { RUN_STATUSES } from "../../db/run-status";
import { runs, webhookDeliveries, webhookDeliveryStatus } from "../../db/schema";
import { collectProcessMetrics, metricsRegistry } from "../../metrics/registry";
import { openSseStreams } from "./sse.server";
import { eventStreamStats } from "~/models/project-events.server";

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Whether the request carries `Authorization: Bearer <token>` (compared in constant time). */
export function hasMetricsToken(request: Request, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
  return !!match && timingSafeEqual(digest(match[1]!), digest(token));
}

/** The database's view, in a registry of its own made for this one scrape. */
async function databaseSeries(database: Database): Promise<Registry> {
  const registry = new Registry();
  const up = new Gauge({
    name: "dyno_database_up",
    help: "1 if this scrape could read the database",
    registers: [registry],
  });
  try {
    const [runCounts, deliveryCounts] = await Promise.all([
      database.db.select({ status: runs.status, n: count() }).from(runs).groupBy(runs.status),
      database.db
        .select({ status: webhookDeliveries.status, n: count() })
        .from(webhookDeliveries)
        .groupBy(webhookDeliveries.status),
    ]);
    const runGauge = new Gauge({
      name: "dyno_runs",
      help: "Runs by status, all projects (the same from every replica)",
      labelNames: ["status"] as const,
      registers: [registry],
    });
    for (const status of RUN_STATUSES) runGauge.set({ status }, runCounts.find((r) => r.status === status)?.n ?? 0);
    const deliveryGauge = new Gauge({
      name: "dyno_webhook_deliveries",
      help: "Completion webhook deliveries by status, all projects (the same from every replica)",
      labelNames: ["status"] as const,
      registers: [registry],
    });
    for (const status of webhookDeliveryStatus.enumValues) {
      deliveryGauge.set({ status }, deliveryCounts.find((r) => r.status === status)?.n ?? 0);
    }
    up.set(1);
  } catch (error) {
    console.warn(`/metrics: the database could not be read: ${String(error)}`);
    up.set(0);
  }
  return registry;
}

function streamSeries(database: Database): Registry {
  const registry = new Registry();
  const streams = new Gauge({
    name: "dyno_sse_clients",
    help: "Open Server-Sent Events streams in this process, by stream",
    labelNames: ["stream"] as const,
    registers: [registry],
  });
  streams.set({ stream: "events" }, openSseStreams("events"));
  streams.set({ stream: "app-log" }, openSseStreams("app-log"));
  const stats = eventStreamStats(database);
  new Gauge({
    name: "dyno_run_event_watchers",
    help: "Subscriptions to run events in this process (one per stream, plus the stop watch of each step in flight)",
    registers: [registry],
  }).set(stats.runEventWatchers);
  new Gauge({
    name: "dyno_run_event_feeds",
    help: "Projects whose new run events this process reads once for all their watchers",
    registers: [registry],
  }).set(stats.runEventFeeds);
  return registry;
}

export async function metricsResponse(
  request: Request,
  { token, database }: { token: string | undefined; database: Database },
): Promise<Response> {
  if (!token) return new Response("Metrics are off: set METRICS_TOKEN to serve them.\n", { status: 404 });
  if (!hasMetricsToken(request, token)) {
    return new Response("A bearer token is needed (METRICS_TOKEN).\n", {
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="metrics"' },
    });
  }
  collectProcessMetrics();
  const merged = Registry.merge([metricsRegistry, streamSeries(database), await databaseSeries(database)]);
  return new Response(await merged.metrics(), {
    headers: { "content-type": merged.contentType, "cache-control": "no-store" },
  });
}
