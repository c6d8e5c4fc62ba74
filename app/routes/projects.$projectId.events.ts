import type { LoaderFunctionArgs } from "@remix-run/node";
import { requireUser } from "~/auth/session.server";
import { db, getDatabase } from "~/db.server";
import { eventStreamStart, projectEventStream } from "~/models/project-events.server";
import { requireProject } from "~/models/projects.server";

/**
 * GET /projects/:projectId/events: the project's run events as Server-Sent
 * Events (see app/models/project-events.server.ts). Owner only: 401 without
 * a session (EventSource sends Accept: text/event-stream), 404 for anyone
 * else's project, 400 for a bad Last-Event-ID or `after`.
 */
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  const user = await requireUser(request);
  const project = await requireProject(db, user.id, params.projectId);
  const afterId = eventStreamStart(request);
  // The socket's close, not request.signal: see AppLoadContext.responseClosed.
  return projectEventStream(getDatabase(), {
    projectId: project.id,
    afterId,
    signal: context.responseClosed,
    drained: context.responseDrained,
  });
}
