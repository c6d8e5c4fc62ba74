import type { LoaderFunctionArgs } from "@remix-run/node";
import { requireUser } from "~/auth/session.server";
import { appLogStart, appLogStream, openProjectApp } from "~/builder/app-log.server";
import { db } from "~/db.server";
import { requireProject } from "~/models/projects.server";

/**
 * GET /projects/:projectId/app-log: the project's app process (its status
 * and log lines) as Server-Sent Events (see app/builder/app-log.server.ts).
 * Owner only: 401 without a session, 404 for anyone else's project, 400 for a
 * bad Last-Event-ID or `after`.
 */
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  const user = await requireUser(request);
  const project = await requireProject(db, user.id, params.projectId);
  const afterSeq = appLogStart(request);
  // The socket's close, not request.signal: see AppLoadContext.responseClosed (decision 016).
  // The row is read again while the project has no app: the first run gives it a sandbox while the page is open.
  const open = async () => openProjectApp(await requireProject(db, user.id, project.id));
  return appLogStream({ open, afterSeq, signal: context.responseClosed, drained: context.responseDrained });
}
