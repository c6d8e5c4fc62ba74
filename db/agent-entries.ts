/**
 * Writing agent_entries (what the model sees, one row per run, iteration and kind): an upsert, so a step that
 * re-executes after a crash rewrites its own row instead of adding one. Reads are the agent's
 * (inngest/agent/entries.ts); a restore's notice to the model is written from versions/restore.ts.
 */
import type { Db } from "./client";
import { pgSafe } from "./pg-safe";
import { agentEntries, type AgentEntryKind } from "./schema";

/** Upserts an entry; its text is saved Postgres-safe (db/pg-safe.ts). */
export async function saveEntry(
  db: Pick<Db, "insert">,
  unsafeEntry: {
    runId: string;
    projectId: string;
    iteration: number;
    kind: AgentEntryKind;
    payload: Record<string, unknown>;
  },
): Promise<void> {
  const entry = pgSafe(unsafeEntry);
  await db
    .insert(agentEntries)
    .values(entry)
    .onConflictDoUpdate({
      target: [agentEntries.runId, agentEntries.iteration, agentEntries.kind],
      set: { payload: entry.payload },
    });
}
