/**
 * One past (or current) run of a project, for the Runs tab's detail view:
 * its summary and every event it wrote, which the page folds with the live
 * card's reducer and renders read-only. Only the owner's project reaches
 * here (the route checks it with requireProject); a run of another project,
 * or an id that is not one, is a 404 like any unknown page.
 */
import { and, asc, eq } from "drizzle-orm";
import type { Db } from "../../db/client";
import { runEvents, runs, type Project } from "../../db/schema";
import type { ProjectEvent } from "../models/project-events";
import { isUuid } from "../models/runs.server";
import { summarize, type RunSummary } from "./builder.server";
import type { LiveRunSeed } from "./live-run";

export interface RunDetail {
  summary: RunSummary;
  seed: LiveRunSeed;
  events: ProjectEvent[];
}

export async function loadRunDetail(db: Db, project: Project, runId: string): Promise<RunDetail> {
  if (!isUuid(runId)) throw new Response("No such run in this project.", { status: 404, statusText: "Not Found" });
  const [run] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.id, runId), eq(runs.projectId, project.id)));
  if (!run) throw new Response("No such run in this project.", { status: 404, statusText: "Not Found" });
  const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.id));
  return {
    summary: summarize(run),
    seed: { id: run.id, mode: run.mode, maxIterations: run.maxIterations },
    events: events.map((e) => ({
      id: e.id,
      runId: e.runId,
      type: e.type,
      data: e.data,
      createdAt: e.createdAt.toISOString(),
    })),
  };
}
