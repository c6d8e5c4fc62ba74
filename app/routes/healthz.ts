import { sql } from "drizzle-orm";
import { getDatabase } from "~/db.server";

/** Liveness and database check for load balancers and start-up scripts. */
export async function loader() {
  const database = getDatabase();
  try {
    await database.db.execute(sql`select 1`);
    return Response.json({ ok: true, database: database.driver });
  } catch (error) {
    return Response.json(
      { ok: false, database: database.driver, error: error instanceof Error ? error.message : String(error) },
      { status: 503 },
    );
  }
}
