/**
 * A builder's projects: listing, creating, renaming, deleting, and the one
 * ownership check every project route goes through. Anything that is not the
 * signed-in builder's project answers 404, whether it exists or not.
 */
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { ACTIVE_RUN_STATUSES } from "../../db/run-status";
import { projects, runs, UNTITLED_PROJECT, type Project, type RunStatus } from "../../db/schema";
import { forgetProjectHistory, projectHistory } from "../../versions/config";
import { env } from "../env.server";
import { openProjectSandbox } from "./project-files.server";
import { ProjectTitle } from "./project-title";
import { isUuid, stopRun } from "./runs.server";

export { MAX_TITLE_CHARS, ProjectTitle } from "./project-title";

/** The builder's project, or a 404 Response (also for ids that are not uuids). */
export async function requireProject(db: Db, userId: string, projectId: string | undefined): Promise<Project> {
  const [project] =
    projectId && isUuid(projectId)
      ? await db
          .select()
          .from(projects)
          .where(and(eq(projects.id, projectId), eq(projects.userId, userId)))
      : [];
  if (!project) throw new Response("Project not found", { status: 404, statusText: "Not Found" });
  return project;
}

export interface ProjectSummary {
  id: string;
  title: string;
  updatedAt: Date;
  /** The latest run's status, or null before the first prompt. */
  lastRunStatus: RunStatus | null;
  lastActivityAt: Date;
}

/** The builder's projects, most recently active first. */
export async function listProjects(db: Db, userId: string): Promise<ProjectSummary[]> {
  const lastRun = db
    .selectDistinctOn([runs.projectId], {
      projectId: runs.projectId,
      status: runs.status,
      at: sql<Date>`coalesce(${runs.finishedAt}, ${runs.startedAt}, ${runs.createdAt})`.as("at"),
    })
    .from(runs)
    .where(eq(runs.userId, userId))
    .orderBy(runs.projectId, desc(runs.createdAt))
    .as("last_run");
  const rows = await db
    .select({
      id: projects.id,
      title: projects.title,
      updatedAt: projects.updatedAt,
      status: lastRun.status,
      at: lastRun.at,
    })
    .from(projects)
    .leftJoin(lastRun, eq(lastRun.projectId, projects.id))
    .where(eq(projects.userId, userId));
  return rows
    .map((row) => {
      const runAt = row.at ? new Date(row.at) : null;
      return {
        id: row.id,
        title: row.title,
        updatedAt: row.updatedAt,
        lastRunStatus: row.status,
        lastActivityAt: runAt && runAt > row.updatedAt ? runAt : row.updatedAt,
      };
    })
    .sort((a, b) => b.lastActivityAt.getTime() - a.lastActivityAt.getTime());
}

export async function createProject(db: Db, userId: string, title?: string): Promise<Project> {
  const [project] = await db
    .insert(projects)
    .values({ userId, title: title ? ProjectTitle.parse(title) : UNTITLED_PROJECT })
    .returning();
  return project!;
}

export async function renameProject(db: Db, userId: string, projectId: string, title: string): Promise<Project> {
  const project = await requireProject(db, userId, projectId);
  const [renamed] = await db
    .update(projects)
    .set({ title: ProjectTitle.parse(title), updatedAt: new Date() })
    .where(eq(projects.id, project.id))
    .returning();
  return renamed!;
}

/** How long a delete waits for the project's runs to stop before removing it regardless. */
const STOP_BEFORE_DELETE_MS = 10_000;

/**
 * Deletes a project: stops its active runs and waits (a bounded while) until
 * they have ended, destroys its sandbox, then removes its rows (runs, events,
 * transcript cascade). Waiting matters: the step in flight hears the stop by
 * reading the run's events, and ends the run by writing to it; rows deleted
 * under it leave a command running and the run never recorded as stopped.
 * A sandbox that cannot be destroyed does not keep the project.
 */
export async function deleteProject(db: Db, userId: string, projectId: string): Promise<void> {
  const project = await requireProject(db, userId, projectId);
  const active = await db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.projectId, project.id), inArray(runs.status, [...ACTIVE_RUN_STATUSES])));
  const stopping: string[] = [];
  for (const run of active) {
    await stopRun(db, { userId, runId: run.id }).then(
      () => stopping.push(run.id),
      (error: unknown) => console.warn(`delete project ${project.id}: could not stop run ${run.id}:`, error),
    );
  }
  if (!(await runsEnded(db, stopping, STOP_BEFORE_DELETE_MS))) {
    console.warn(
      `delete project ${project.id}: its runs did not stop within ${STOP_BEFORE_DELETE_MS / 1000} s; deleting anyway`,
    );
  }
  if (project.sandboxProvider) {
    try {
      // The provider that holds its files, whatever SANDBOX_PROVIDER says now.
      const sandbox = await openProjectSandbox(project);
      await sandbox?.destroy();
    } catch (error) {
      console.warn(`delete project ${project.id}: could not destroy its sandbox:`, error);
    }
  }
  try {
    // Its history too (decision 026): kept outside the workspace, so destroying the sandbox did not remove it.
    await projectHistory(project.id, env(), "local")?.destroy();
    forgetProjectHistory(project.id);
  } catch (error) {
    console.warn(`delete project ${project.id}: could not remove its history:`, error);
  }
  await db.delete(projects).where(eq(projects.id, project.id));
}

/** Polls until none of `runIds` is active any more; false if some still are after `timeoutMs`. */
async function runsEnded(db: Db, runIds: string[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (runIds.length > 0) {
    const still = await db
      .select({ id: runs.id })
      .from(runs)
      .where(and(inArray(runs.id, runIds), inArray(runs.status, [...ACTIVE_RUN_STATUSES])));
    if (still.length === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}
