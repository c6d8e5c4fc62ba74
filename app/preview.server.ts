/**
 * Where a project's built app can be seen. Local projects are served by the
 * preview server (server/preview.ts) on an origin of its own; Modal projects
 * by their sandbox's tunnel (a separate origin already).
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { eq } from "drizzle-orm";
import { projects, type Project } from "../db/schema";
import { localWorkspacePath } from "../sandbox/local";
import { sessionSecret } from "./auth/secret.server";
import { db } from "./db.server";
import { env } from "./env.server";
import { openProjectSandbox } from "./models/project-files.server";
import { isPreviewProjectId, previewToken } from "./preview-token.server";

export { previewToken, verifyPreviewToken } from "./preview-token.server";

/**
 * The running preview server, as started by server/app.ts. On globalThis
 * because Vite's dev server loads routes in a module graph of its own: the
 * server's copy of this module and the routes' copy are different objects.
 */
export interface RunningPreviewServer {
  port: number;
}
const registry = globalThis as typeof globalThis & { __dynoPreviewServer?: RunningPreviewServer };

export function setRunningPreviewServer(server: RunningPreviewServer | undefined): void {
  registry.__dynoPreviewServer = server;
}

export function runningPreviewServer(): RunningPreviewServer | undefined {
  return registry.__dynoPreviewServer;
}

/** The project's local workspace folder if it exists; never creates it. */
export async function existingLocalWorkspace(projectId: string): Promise<string | null> {
  if (!isPreviewProjectId(projectId)) return null;
  const folder = localWorkspacePath(env().DYNO_DATA_DIR, projectId);
  const info = await stat(folder).catch(() => null);
  return info?.isDirectory() ? folder : null;
}

/** The preview server's resolveDirectory: an existing project's existing workspace, else null. */
export async function projectPreviewDirectory(projectId: string): Promise<string | null> {
  if (!isPreviewProjectId(projectId)) return null;
  const [project] = await db.select({ id: projects.id }).from(projects).where(eq(projects.id, projectId));
  if (!project) return null;
  return existingLocalWorkspace(project.id);
}

/**
 * The URL the builder page frames for the project, or null when there is
 * nothing to show yet (no workspace, the preview server is not running, the
 * Modal sandbox cannot be reached). Local: `<origin>/<id>/<token>/`, where
 * origin is PREVIEW_ORIGIN or this request's host on the preview server's port.
 */
export async function previewUrlFor(
  request: Request,
  project: Pick<Project, "id" | "sandboxProvider" | "sandboxId">,
): Promise<string | null> {
  if (project.sandboxProvider === "modal") {
    try {
      // The project's own provider, whatever SANDBOX_PROVIDER says now: its files live there.
      const sandbox = await openProjectSandbox(project);
      const location = await sandbox?.preview();
      return location?.kind === "url" ? location.url : null;
    } catch (error) {
      console.warn(
        `preview: no Modal preview for project ${project.id}:`,
        error instanceof Error ? error.message : error,
      );
      return null;
    }
  }
  const workspace = await existingLocalWorkspace(project.id);
  // A static preview starts at index.html: until the agent writes one, there is nothing to frame.
  if (!workspace || !(await stat(path.join(workspace, "index.html")).catch(() => null))?.isFile()) return null;
  const origin = previewOrigin(request);
  if (!origin) return null;
  return `${origin}/${project.id}/${previewToken(sessionSecret(), project.id)}/`;
}

/** The preview server's origin as the builder page at `request.url` frames it (also its CSP frame-src). */
export function previewOrigin(request: Pick<Request, "url">): string | null {
  const configured = env().PREVIEW_ORIGIN;
  if (configured) return configured.replace(/\/+$/, "");
  const running = runningPreviewServer();
  if (!running) return null;
  const url = new URL(request.url);
  // hostname keeps IPv6 brackets; the port differs from the builder's, so the origin does too.
  return `${url.protocol}//${url.hostname}:${running.port}`;
}
