import type { LoaderFunctionArgs } from "@remix-run/node";
import { getDatabase } from "~/db.server";
import { env } from "~/env.server";
import { metricsResponse } from "~/http/metrics.server";

/** Prometheus' scrape target: see app/http/metrics.server.ts. */
export function loader({ request }: LoaderFunctionArgs) {
  return metricsResponse(request, { token: env().METRICS_TOKEN, database: getDatabase() });
}
