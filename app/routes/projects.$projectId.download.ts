import type { LoaderFunctionArgs } from "@remix-run/node";
import { requireUserId } from "~/auth/session.server";
import { db } from "~/db.server";
import { projectSlug, zipProject } from "~/models/project-files.server";
import { requireProject } from "~/models/projects.server";

/** The project's files as a zip (a resource route: link to it with a plain <a href download>, not <Link>). */
export async function loader({ request, params }: LoaderFunctionArgs) {
  const userId = await requireUserId(request);
  const project = await requireProject(db, userId, params.projectId);
  const zip = await zipProject(project);
  return new Response(zip, {
    headers: {
      "Content-Type": "application/zip",
      "Content-Disposition": `attachment; filename="${projectSlug(project.title)}.zip"`,
      "Content-Length": String(zip.byteLength),
      "Cache-Control": "private, no-store",
      "X-Content-Type-Options": "nosniff",
    },
  });
}
