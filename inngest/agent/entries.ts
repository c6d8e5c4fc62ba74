/**
 * agent_entries: what the model sees, one row per (run, iteration, kind).
 * Steps write them with upserts, so a step that re-executes after a crash
 * rewrites its own row instead of adding one. The conversation lives here,
 * never in step state.
 */
import { and, asc, desc, eq, inArray, isNotNull, sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { agentEntries, runs, type AgentEntry, type AgentEntryKind } from "../../db/schema";

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

// The writer lives with the table (db/agent-entries.ts), so versions/restore.ts (below this layer) can save a notice.
export { saveEntry } from "../../db/agent-entries";

export async function findEntry(
  db: Db,
  runId: string,
  iteration: number,
  kind: AgentEntryKind,
): Promise<AgentEntry | undefined> {
  const [entry] = await db
    .select()
    .from(agentEntries)
    .where(and(eq(agentEntries.runId, runId), eq(agentEntries.iteration, iteration), eq(agentEntries.kind, kind)));
  return entry;
}

/** The iteration's entries of these kinds, in one read (a step checks for what it saved before). */
export async function findEntries(
  db: Db,
  runId: string,
  iteration: number,
  kinds: readonly AgentEntryKind[],
): Promise<Partial<Record<AgentEntryKind, AgentEntry>>> {
  const rows = await db
    .select()
    .from(agentEntries)
    .where(
      and(eq(agentEntries.runId, runId), eq(agentEntries.iteration, iteration), inArray(agentEntries.kind, [...kinds])),
    );
  return Object.fromEntries(rows.map((row) => [row.kind, row]));
}

/**
 * A project's conversation: the entries of every run that has started, run
 * by run in the order they started. A prompt still queued behind the current
 * run is not part of it yet (its user entry exists from the moment it was sent).
 */
export async function projectEntries(db: Db, projectId: string): Promise<AgentEntry[]> {
  const rows = await db
    .select({ entry: agentEntries })
    .from(agentEntries)
    .innerJoin(runs, eq(runs.id, agentEntries.runId))
    .where(and(eq(agentEntries.projectId, projectId), isNotNull(runs.startedAt)))
    .orderBy(asc(runs.startedAt), asc(agentEntries.id));
  return rows.map((row) => row.entry);
}

/** How many of the run's latest actions in a row were unusable model output. */
export async function unusableActionsInARow(db: Db, runId: string): Promise<number> {
  const actions = await db
    .select({ payload: agentEntries.payload })
    .from(agentEntries)
    .where(and(eq(agentEntries.runId, runId), eq(agentEntries.kind, "action")))
    .orderBy(desc(agentEntries.iteration));
  let count = 0;
  for (const { payload } of actions) {
    if (!payload.problem) break;
    count++;
  }
  return count;
}

/**
 * Sets the run's token counts to the sum of the usage its entries record.
 * A sum, not an increment: a re-executed step cannot count a call twice.
 */
export async function recountTokens(db: Pick<Db, "update">, runId: string): Promise<void> {
  const usage = (field: keyof TokenUsage) =>
    sql<number>`(select coalesce(sum((${agentEntries.payload}->'usage'->>${field})::int), 0) from ${agentEntries} where ${agentEntries.runId} = ${runId})`;
  await db
    .update(runs)
    .set({ inputTokens: usage("inputTokens"), outputTokens: usage("outputTokens") })
    .where(eq(runs.id, runId));
}
