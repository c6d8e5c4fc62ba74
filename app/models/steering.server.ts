/**
 * Steering a working run (decision 033), on the builder's side: a prompt sent
 * while a run is active is queued for that run instead of refused; a queued
 * message can be withdrawn until the agent reads it; one the run ended before
 * reading stays offered, to send as a new prompt or discard. Delivery itself
 * happens in the agent's think step (inngest/agent/steering.ts).
 */
import { randomUUID } from "node:crypto";
import { and, asc, count, desc, eq, inArray } from "drizzle-orm";
import type { Db } from "../../db/client";
import { pgSafeText } from "../../db/pg-safe";
import { appendRunEvent, lockProjectEvents } from "../../db/run-events";
import { ACTIVE_RUN_STATUSES, isFinished } from "../../db/run-status";
import { projects, runs, steerMessages, type Run } from "../../db/schema";
import { PromptInput } from "./prompt";
import { isUuid, NotFoundError, startRun } from "./runs.server";

/** Messages waiting for one run at once; more are refused until the agent reads some. */
export const MAX_QUEUED_STEERS = 5;

/** A steering message the page cannot take now (too many queued, the run stopping, already delivered). */
export class SteerRefusedError extends Error {
  readonly status = 409;
}

/** How a steering message stands, as the transcript shows it. */
export type SteerStatus = "queued" | "delivered" | "undelivered";

export interface SteerView {
  id: string;
  runId: string;
  content: string;
  status: SteerStatus;
  /** The step it was given to the agent at. */
  iteration: number | null;
  createdAt: string;
}

/** Thrown inside the queueing transaction to undo it: the run ended meanwhile. */
class RunEnded extends Error {}

/**
 * Queues the prompt for the project's active run. Undefined when no run is
 * active (the caller starts one instead). The run's status is checked under
 * its project's event lock (appendRunEvent), the lock every run's end takes
 * too, so a message is queued only for a run that has not ended.
 */
export async function queueSteer(
  db: Db,
  { userId, projectId, prompt }: { userId: string; projectId: string; prompt: string },
): Promise<{ id: string; runId: string } | undefined> {
  if (!isUuid(projectId)) throw new NotFoundError("Project not found");
  const content = pgSafeText(PromptInput.shape.prompt.parse(prompt));
  const [project] = await db
    .select({ id: projects.id })
    .from(projects)
    .where(and(eq(projects.id, projectId), eq(projects.userId, userId)));
  if (!project) throw new NotFoundError("Project not found");
  const [active] = await db
    .select({ id: runs.id, status: runs.status })
    .from(runs)
    .where(and(eq(runs.projectId, projectId), inArray(runs.status, [...ACTIVE_RUN_STATUSES])))
    .orderBy(desc(runs.createdAt))
    .limit(1);
  if (!active) return undefined;
  if (active.status === "stopping")
    throw new SteerRefusedError("The run is stopping, so it will not read a new message. Send it once it has stopped.");
  const id = randomUUID();
  try {
    await db.transaction(async (tx) => {
      // First, so that two messages sent at once are counted one after the other.
      const event = await appendRunEvent(tx, {
        runId: active.id,
        projectId,
        type: "steer_queued",
        data: { steerId: id },
        onlyIfStatus: ["queued", "running"],
      });
      if (!event) throw new RunEnded();
      const [{ queued } = { queued: 0 }] = await tx
        .select({ queued: count() })
        .from(steerMessages)
        .where(and(eq(steerMessages.runId, active.id), eq(steerMessages.state, "queued")));
      if (queued >= MAX_QUEUED_STEERS)
        throw new SteerRefusedError(
          `${MAX_QUEUED_STEERS} messages are already waiting for the agent's next step. Withdraw one, or wait until it reads them.`,
        );
      await tx.insert(steerMessages).values({ id, runId: active.id, projectId, content });
    });
  } catch (error) {
    // The run ended between the read and the lock: no run to steer, so the caller starts one.
    if (error instanceof RunEnded) return undefined;
    throw error;
  }
  return { id, runId: active.id };
}

/**
 * Withdraws a message the agent has not read. Against a delivery at the same
 * moment, the row's lock decides: whichever commits first wins, and a late
 * withdraw is refused with the step the agent read it at.
 */
export async function withdrawSteer(db: Db, { projectId, steerId }: { projectId: string; steerId: string }) {
  if (!isUuid(steerId)) throw new NotFoundError("Message not found");
  const withdrawn = await db.transaction(async (tx) => {
    // The event lock before the message's row, the order every writer keeps (db/run-events.ts).
    await lockProjectEvents(tx, projectId);
    const [row] = await tx
      .update(steerMessages)
      .set({ state: "withdrawn", settledAt: new Date() })
      .where(
        and(eq(steerMessages.id, steerId), eq(steerMessages.projectId, projectId), eq(steerMessages.state, "queued")),
      )
      .returning();
    if (!row) return undefined;
    // For the builder's other tabs; a run that has ended takes no more events.
    await appendRunEvent(tx, {
      runId: row.runId,
      projectId,
      type: "steer_withdrawn",
      data: { steerId },
      onlyIfStatus: ["queued", "running", "stopping"],
    });
    return row;
  });
  if (withdrawn) return;
  const [row] = await db
    .select()
    .from(steerMessages)
    .where(and(eq(steerMessages.id, steerId), eq(steerMessages.projectId, projectId)));
  if (!row) throw new NotFoundError("Message not found");
  if (row.state === "delivered")
    throw new SteerRefusedError(`Too late to withdraw: the agent read it at step ${row.deliveredIteration}.`);
  throw new SteerRefusedError(
    row.state === "resent" ? "That message was sent as a prompt already." : "That message was withdrawn already.",
  );
}

/**
 * Sends a message the run ended before reading as a new prompt. It is marked
 * resent in the prompt's own transaction, so it becomes one prompt at most.
 */
export async function resendSteer(
  db: Db,
  { userId, projectId, steerId }: { userId: string; projectId: string; steerId: string },
): Promise<Run> {
  if (!isUuid(steerId)) throw new NotFoundError("Message not found");
  const [row] = await db
    .select({ steer: steerMessages, runStatus: runs.status })
    .from(steerMessages)
    .innerJoin(runs, eq(runs.id, steerMessages.runId))
    .where(and(eq(steerMessages.id, steerId), eq(steerMessages.projectId, projectId)));
  if (!row) throw new NotFoundError("Message not found");
  if (row.steer.state !== "queued" || !isFinished(row.runStatus))
    throw new SteerRefusedError("Only a message the run ended before reading can be sent as a prompt.");
  return startRun(db, {
    userId,
    projectId,
    input: { prompt: row.steer.content, mode: "build" },
    onlyWhenIdle: true,
    beforeRecord: async (tx) => {
      const [taken] = await tx
        .update(steerMessages)
        .set({ state: "resent", settledAt: new Date() })
        .where(and(eq(steerMessages.id, steerId), eq(steerMessages.state, "queued")))
        .returning({ id: steerMessages.id });
      if (!taken) throw new SteerRefusedError("That message was sent or withdrawn already.");
    },
  });
}

/** The project's steering messages the transcript shows (not those withdrawn or sent as prompts). */
export async function listSteering(db: Db, projectId: string): Promise<SteerView[]> {
  const rows = await db
    .select({ steer: steerMessages, runStatus: runs.status })
    .from(steerMessages)
    .innerJoin(runs, eq(runs.id, steerMessages.runId))
    .where(and(eq(steerMessages.projectId, projectId), inArray(steerMessages.state, ["queued", "delivered"])))
    .orderBy(asc(steerMessages.createdAt), asc(steerMessages.id));
  return rows.map(({ steer, runStatus }) => ({
    id: steer.id,
    runId: steer.runId,
    content: steer.content,
    status: steer.state === "delivered" ? "delivered" : isFinished(runStatus) ? "undelivered" : "queued",
    iteration: steer.deliveredIteration,
    createdAt: steer.createdAt.toISOString(),
  }));
}
