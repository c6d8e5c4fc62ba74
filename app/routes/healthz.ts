import { sql } from "drizzle-orm";
import { getDatabase } from "~/db.server";
import { eventStreamStats } from "~/models/project-events.server";

/**
 * Liveness and database check for load balancers and start-up scripts, with
 * the number of open event streams (SSE clients) and of run-event watchers
 * (subscriptions waiting for NOTIFY): both fall back to 0 when clients leave.
 */
export async function loader() {
  const database = getDatabase();
  const streams = eventStreamStats(database);
  try {
    await database.db.execute(sql`select 1`);
    return Response.json({ ok: true, database: database.driver, ...streams });
  } catch (error) {
    return Response.json(
      {
        ok: false,
        database: database.driver,
        ...streams,
        error: error instanceof Error ? error.message : String(error),
      },
      { status: 503 },
    );
  }
}
