import { getDatabase } from "~/db.server";
import { healthReport } from "~/http/health.server";

/** For load balancers and start-up scripts: see app/http/health.server.ts. */
export async function loader() {
  const { status, body } = await healthReport(getDatabase());
  return Response.json(body, { status, headers: { "cache-control": "no-store" } });
}
