/**
 * Steering (decision 033): messages the builder sent while a run was active
 * reach the agent at the start of its next think. Delivery runs inside the
 * think step and is keyed by (run, iteration): the messages still queued
 * become one `steer` entry and are marked delivered at that iteration in one
 * transaction, so a think retried after a crash finds the entry and sends
 * the same prompt, and no message is given twice or lost.
 */
import { and, asc, eq } from "drizzle-orm";
import type { Db } from "../../db/client";
import { appendRunEvent, lockProjectEvents } from "../../db/run-events";
import { steerMessages } from "../../db/schema";
import { findEntry, saveEntry } from "./entries";

/** Thrown inside the delivery's transaction to undo it: the run stopped meanwhile, the messages stay queued. */
class RunNotRunning extends Error {}

/**
 * Delivers the run's queued messages at this iteration, once. Returns how many
 * were delivered by this call (0 when none were queued, or an earlier attempt
 * of the same think delivered them already).
 */
export async function deliverSteering(
  db: Db,
  run: { id: string; projectId: string },
  iteration: number,
): Promise<number> {
  // An earlier attempt of this think delivered them: its entry is what the model reads again.
  if (await findEntry(db, run.id, iteration, "steer")) return 0;
  const [waiting] = await db
    .select({ id: steerMessages.id })
    .from(steerMessages)
    .where(and(eq(steerMessages.runId, run.id), eq(steerMessages.state, "queued")))
    .limit(1);
  if (!waiting) return 0;
  try {
    return await db.transaction(async (tx) => {
      // The event lock before the messages' rows, the order every writer keeps (db/run-events.ts).
      await lockProjectEvents(tx, run.projectId);
      // The update takes each row's lock: a withdraw racing it either commits first (the row is no longer
      // queued and is skipped here) or waits and then finds it delivered.
      const delivered = await tx
        .update(steerMessages)
        .set({ state: "delivered", deliveredIteration: iteration, settledAt: new Date() })
        .where(and(eq(steerMessages.runId, run.id), eq(steerMessages.state, "queued")))
        .returning();
      if (delivered.length === 0) return 0;
      delivered.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
      await saveEntry(tx, {
        runId: run.id,
        projectId: run.projectId,
        iteration,
        kind: "steer",
        payload: { messages: delivered.map((m) => ({ id: m.id, content: m.content })) },
      });
      const event = await appendRunEvent(tx, {
        runId: run.id,
        projectId: run.projectId,
        type: "steer_delivered",
        dedupeKey: `steer-${iteration}`,
        data: { iteration, steerIds: delivered.map((m) => m.id) },
        onlyIfStatus: ["running"],
      });
      if (!event) throw new RunNotRunning();
      return delivered.length;
    });
  } catch (error) {
    if (error instanceof RunNotRunning) return 0;
    throw error;
  }
}

/** The run's messages in the order they were sent. */
export function runSteerMessages(db: Db, runId: string) {
  return db.select().from(steerMessages).where(eq(steerMessages.runId, runId)).orderBy(asc(steerMessages.createdAt));
}
