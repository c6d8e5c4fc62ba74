import { and, eq } from "drizzle-orm";
import { sessionSecret } from "../../app/auth/secret.server";
import { env } from "../../app/env.server";
import { db } from "../../db";
import { gitRemotes, projects, versions } from "../../db/schema";
import { projectHistory, VERSIONS_UNAVAILABLE_ON_MODAL } from "../../versions/config";
import { ExportError, parseRemote, pushHistory } from "../../versions/export";
import { inngest } from "../client";
import { exportRequested, type ExportRequestedData } from "../events";
import { openSecret } from "../webhooks/secret-box";

/** Engine retries of a push whose remote could not be reached (4 attempts in all, the engine's backoff between). */
export const EXPORT_RETRIES = 3;

export type ExportOutcome =
  { status: "pushed"; number: number } | { status: "failed"; error: string } | { status: "superseded" };

async function record(projectId: string, requestedAt: Date, outcome: Exclude<ExportOutcome, { status: "superseded" }>) {
  const set =
    outcome.status === "pushed"
      ? { pushState: "pushed" as const, lastPushedAt: new Date(), lastPushedNumber: outcome.number, lastError: null }
      : { pushState: "failed" as const, lastError: outcome.error };
  await db
    .update(gitRemotes)
    .set(set)
    .where(and(eq(gitRemotes.projectId, projectId), eq(gitRemotes.pushRequestedAt, requestedAt)));
}

/**
 * One push, inside the step: reads the remote's row (the URL, the branch, the sealed token), opens the token
 * here and nowhere else, and pushes. Its outcome is what the step returns (no token, no URL credentials: the
 * error text is already scrubbed by pushHistory). A remote that cannot be reached throws, so the engine tries
 * again, unless this is the last attempt; a refusal (credentials, a rejected branch, no repository) is recorded
 * at once and not retried.
 */
export async function pushRequested(data: ExportRequestedData, { lastAttempt }: { lastAttempt: boolean }) {
  const requestedAt = new Date(data.requestedAt);
  const [row] = await db.select().from(gitRemotes).where(eq(gitRemotes.projectId, data.projectId));
  // Asked again since (or the project is gone): this event's push is not the one the builder waits for.
  if (!row || row.pushState !== "pushing" || row.pushRequestedAt?.getTime() !== requestedAt.getTime()) {
    return { status: "superseded" } satisfies ExportOutcome;
  }
  const fail = async (error: string): Promise<ExportOutcome> => {
    const outcome = { status: "failed" as const, error };
    await record(data.projectId, requestedAt, outcome);
    return outcome;
  };
  const [project] = await db.select().from(projects).where(eq(projects.id, data.projectId));
  const e = env();
  const history = project ? projectHistory(project.id, e, project.sandboxProvider ?? e.SANDBOX_PROVIDER) : null;
  if (!history) return fail(VERSIONS_UNAVAILABLE_ON_MODAL);
  const [version] = await db
    .select()
    .from(versions)
    .where(and(eq(versions.projectId, data.projectId), eq(versions.number, data.number)));
  if (!version) return fail(`Version ${data.number} is no longer in the history.`);
  let token: string | undefined;
  try {
    token = row.token ? openSecret(row.token, sessionSecret()) : undefined;
  } catch {
    return fail("The stored token could not be read (SESSION_SECRET changed): enter it again.");
  }
  try {
    const remote = parseRemote(row.url, { allowLocal: e.VERSIONS_EXPORT_ALLOW_LOCAL });
    await pushHistory(history, { remote, branch: row.branch, token, headSha: version.commitSha });
  } catch (error) {
    if (error instanceof ExportError && (!error.retriable || lastAttempt)) return fail(error.message);
    if (error instanceof ExportError) throw new Error(`${error.message} Trying again.`);
    // Not git's answer (the database, the disk): its text could name anything, so the row gets a sentence.
    const text = error instanceof Error ? error.message : String(error);
    if (lastAttempt) return fail("The push failed: see the server log.");
    throw new Error(
      `The push failed (${text
        .split(token || "\u0000")
        .join("***")
        .slice(0, 200)}). Trying again.`,
    );
  }
  const outcome = { status: "pushed" as const, number: data.number };
  await record(data.projectId, requestedAt, outcome);
  return outcome;
}

/**
 * Export to Git as a durable function (decision 027, addendum): the History view's action saves the remote
 * with push_state "pushing" and sends versions/export.requested; this pushes in one step, one push per
 * project at a time, and records the outcome on the row, which the History view shows. A push the app's
 * crash interrupted is run again by the engine.
 */
export const exportHistory = inngest.createFunction(
  {
    id: "export-history",
    name: "Export history to Git",
    triggers: [exportRequested],
    concurrency: { key: "event.data.projectId", limit: 1 },
    retries: EXPORT_RETRIES,
  },
  async ({ event, step, attempt }) =>
    step.run("push", () => pushRequested(event.data, { lastAttempt: attempt >= EXPORT_RETRIES })),
);
