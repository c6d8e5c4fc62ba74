import type { LoaderFunctionArgs } from "@remix-run/node";
import { requireUserId } from "~/auth/session.server";
import { db } from "~/db.server";
import { projectSlug } from "~/models/project-files.server";
import { requireProject } from "~/models/projects.server";
import { zipVersion } from "~/models/versions.server";

/** One version's files as a zip, read from the project's history (a resource route: link with <a href download>). */
export async function loader({ request, params }: LoaderFunctionArgs) {
  const userId = await requireUserId(request);
  const project = await requireProject(db, userId, params.projectId);
  const { zip, number } = await zipVersion(db, project, params.versionId ?? "");
  return new Response(new Uint8Array(zip), {
    headers: {
      "Content-Type": "application/zip",
      "Content-Disposition": `attachment; filename="${projectSlug(project.title)}-v${number}.zip"`,
      "Content-Length": String(zip.byteLength),
      "Cache-Control": "private, no-store",
      "X-Content-Type-Options": "nosniff",
    },
  });
}
