/**
 * Starting and stopping runs on behalf of a builder: the write the chat
 * action makes before it answers, and the events it sends the engine.
 */
import { and, desc, eq } from "drizzle-orm";
import type { Db } from "../../db/client";
import { appendRunEvent } from "../../db/run-events";
import { messages, projects, runs, type Run } from "../../db/schema";
import { agentPrompt, agentStop, inngest } from "../../inngest/client";
import { failRun, markRunStopping } from "../../inngest/run-lifecycle";
import { env } from "../env.server";
import { PromptInput } from "./prompt";

/** A run or project that does not exist or belongs to someone else: both answer 404. */
export class NotFoundError extends Error {
  readonly status = 404;
}

/** The engine could not be reached: the run is marked failed, the prompt kept. */
export class EngineUnavailableError extends Error {
  readonly status = 503;
}

/**
 * Records the prompt (user message, queued run, `queued` event) in one
 * transaction, then sends `agent/prompt` with the run id as the event id, so
 * a resent event cannot start a second run.
 */
export async function startRun(
  db: Db,
  { userId, projectId, input }: { userId: string; projectId: string; input: PromptInput },
): Promise<Run> {
  const { prompt, mode, maxIterations } = PromptInput.parse(input);
  const run = await db.transaction(async (tx) => {
    const [project] = await tx
      .select({ id: projects.id })
      .from(projects)
      .where(and(eq(projects.id, projectId), eq(projects.userId, userId)));
    if (!project) throw new NotFoundError("Project not found");
    const [created] = await tx
      .insert(runs)
      .values({
        projectId,
        userId,
        mode,
        prompt,
        maxIterations: maxIterations ?? env().AGENT_MAX_ITERATIONS,
      })
      .returning();
    if (!created) throw new Error("run insert returned no row");
    await tx.insert(messages).values({ projectId, runId: created.id, role: "user", content: prompt });
    await tx.update(projects).set({ updatedAt: new Date() }).where(eq(projects.id, projectId));
    await appendRunEvent(tx, { runId: created.id, projectId, type: "queued", data: { mode } });
    return created;
  });

  try {
    await inngest.send(agentPrompt.create({ runId: run.id, projectId, userId, prompt, mode }, { id: run.id }));
  } catch (error) {
    const reason = `Could not reach the Inngest engine: ${error instanceof Error ? error.message : String(error)}`;
    await failRun(db, run.id, reason);
    throw new EngineUnavailableError(reason, { cause: error });
  }
  return run;
}

/**
 * Asks a run to stop: records `stopping` at once, then sends `agent/stop`,
 * which the engine matches by runId (cancelOn). Stopping a finished run is a
 * no-op that says so.
 */
export async function stopRun(
  db: Db,
  { userId, runId }: { userId: string; runId: string },
): Promise<{ stopping: boolean; status: Run["status"] }> {
  const [run] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.id, runId), eq(runs.userId, userId)));
  if (!run) throw new NotFoundError("Run not found");
  const event = await markRunStopping(db, run);
  if (!event) return { stopping: false, status: run.status };
  try {
    await inngest.send(agentStop.create({ runId: run.id, projectId: run.projectId }));
  } catch (error) {
    throw new EngineUnavailableError(
      `Could not reach the Inngest engine to stop the run: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return { stopping: true, status: "stopping" };
}

export async function listRuns(db: Db, { userId, projectId, limit = 20 }: { userId: string; projectId: string; limit?: number }) {
  return db
    .select()
    .from(runs)
    .where(and(eq(runs.projectId, projectId), eq(runs.userId, userId)))
    .orderBy(desc(runs.createdAt))
    .limit(limit);
}
