/**
 * Until accounts land (the builder UI issue), the foundation console works as
 * one local builder with one project. The user has no usable password hash,
 * so nobody can sign in as it once sign-in exists.
 */
import { eq } from "drizzle-orm";
import type { Db } from "../../db/client";
import { projects, users } from "../../db/schema";

export const LOCAL_BUILDER_EMAIL = "builder@localhost";

export async function ensureLocalBuilder(db: Db): Promise<{ userId: string; projectId: string }> {
  await db
    .insert(users)
    .values({ email: LOCAL_BUILDER_EMAIL, passwordHash: "!disabled" })
    .onConflictDoNothing({ target: users.email });
  const [user] = await db.select({ id: users.id }).from(users).where(eq(users.email, LOCAL_BUILDER_EMAIL));
  if (!user) throw new Error("local builder missing after insert");
  const [existing] = await db.select({ id: projects.id }).from(projects).where(eq(projects.userId, user.id)).limit(1);
  if (existing) return { userId: user.id, projectId: existing.id };
  const [project] = await db
    .insert(projects)
    .values({ userId: user.id, title: "Foundation console" })
    .returning({ id: projects.id });
  if (!project) throw new Error("project insert returned no row");
  return { userId: user.id, projectId: project.id };
}
