import { randomUUID } from "node:crypto";
import type { Db } from "../../db/client";
import { projects, runs, users } from "../../db/schema";

export async function createBuilder(
  db: Db,
  { email = `builder-${randomUUID()}@example.test`, title = "Test project" } = {},
) {
  const [user] = await db.insert(users).values({ email, passwordHash: "!test" }).returning();
  const [project] = await db.insert(projects).values({ userId: user!.id, title }).returning();
  return { user: user!, project: project! };
}

export async function createQueuedRun(
  db: Db,
  { userId, projectId }: { userId: string; projectId: string },
  maxIterations = 5,
) {
  const [run] = await db.insert(runs).values({ userId, projectId, prompt: "test prompt", maxIterations }).returning();
  return run!;
}
