/**
 * Where a project's built app can be seen. Local projects are served by the preview server (server/preview.ts) on
 * an origin of their own (`http://<label>.localhost:<preview port>`, or PREVIEW_ORIGIN's wildcard); Modal projects by
 * their sandbox's tunnel (a separate origin already).
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { eq } from "drizzle-orm";
import { projects, type Project } from "../db/schema";
import { localWorkspacePath } from "../sandbox/local";
import type { AppProcess } from "../sandbox/types";
import { sessionSecret } from "./auth/secret.server";
import { db } from "./db.server";
import { env } from "./env.server";
import { openProjectSandbox } from "./models/project-files.server";
import {
  localPreviewOriginTemplate,
  parsePreviewOriginTemplate,
  previewOriginOf,
  previewOriginSource,
  type PreviewOriginTemplate,
} from "./preview-origin.server";
import { isPreviewProjectId, previewLabel } from "./preview-token.server";

export { previewLabel, previewToken, projectIdForPreviewLabel } from "./preview-token.server";

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

/** How long the preview server reuses a project's app lookup: a dev server's page load makes hundreds of requests. */
const APP_LOOKUP_TTL_MS = 2_000;
const MAX_CACHED_APP_LOOKUPS = 1_000;
const appLookups = new Map<string, { at: number; app: Promise<AppProcess | null> }>();

/**
 * The preview server's app: the app process of an existing local project with a workspace, else null (static
 * files, or 404). Modal projects are previewed through their tunnel, never through this server.
 */
export function projectPreviewApp(projectId: string): Promise<AppProcess | null> {
  const now = Date.now();
  const cached = appLookups.get(projectId);
  if (cached && now - cached.at < APP_LOOKUP_TTL_MS) return cached.app;
  const app = lookUpApp(projectId);
  appLookups.delete(projectId);
  if (appLookups.size >= MAX_CACHED_APP_LOOKUPS) appLookups.delete(appLookups.keys().next().value!);
  appLookups.set(projectId, { at: now, app });
  return app;
}

async function lookUpApp(projectId: string): Promise<AppProcess | null> {
  if (!isPreviewProjectId(projectId)) return null;
  const [project] = await db
    .select({ id: projects.id, sandboxProvider: projects.sandboxProvider, sandboxId: projects.sandboxId })
    .from(projects)
    .where(eq(projects.id, projectId));
  if (!project || project.sandboxProvider !== "local") return null;
  try {
    return (await openProjectSandbox(project))?.app ?? null;
  } catch (error) {
    console.warn(`preview: no app for project ${projectId}:`, error instanceof Error ? error.message : error);
    return null;
  }
}

/**
 * The URL the builder page frames for the project, or null when there is
 * nothing to show yet (no workspace, the preview server is not running, the
 * Modal sandbox cannot be reached). Local: `<the project's preview origin>/`, once the workspace has an index.html
 * or an app to run (a command set, or a package.json with a `dev` script).
 */
export async function previewUrlFor(
  _request: Request,
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
  if (!workspace) return null;
  const origin = projectPreviewOrigin(project.id);
  if (!origin) return null;
  if (!(await hasSomethingToShow(workspace, project))) return null;
  return `${origin}/`;
}

/**
 * Whether the project's preview is its app process (a dev server): such a server updates its page itself (Vite's
 * hot module reload, or a full reload it decides on), so the builder leaves the frame alone after a change instead
 * of reloading it, which would throw away the page's state and the point of the hot update. Modal previews and
 * static sites: false.
 */
export async function previewServesApp(
  project: Pick<Project, "id" | "sandboxProvider" | "sandboxId">,
): Promise<boolean> {
  if (project.sandboxProvider !== "local") return false;
  const workspace = await existingLocalWorkspace(project.id);
  if (!workspace) return false;
  if (await hasDevScript(workspace)) return true;
  try {
    return Boolean((await (await openProjectSandbox(project))?.app.status())?.command);
  } catch {
    return false;
  }
}

/** A static page to open, or an app to run. */
async function hasSomethingToShow(
  workspace: string,
  project: Pick<Project, "id" | "sandboxProvider" | "sandboxId">,
): Promise<boolean> {
  if ((await stat(path.join(workspace, "index.html")).catch(() => null))?.isFile()) return true;
  if (await hasDevScript(workspace)) return true;
  if (project.sandboxProvider !== "local") return false;
  try {
    const status = await (await openProjectSandbox(project))?.app.status();
    return Boolean(status?.command);
  } catch {
    return false;
  }
}

const MAX_PACKAGE_JSON_BYTES = 1024 * 1024;

/** The workspace's package.json names a `dev` script (what the app process runs when no command is set). */
async function hasDevScript(workspace: string): Promise<boolean> {
  const file = path.join(workspace, "package.json");
  const info = await stat(file).catch(() => null);
  if (!info?.isFile() || info.size > MAX_PACKAGE_JSON_BYTES) return false;
  try {
    const manifest = JSON.parse(await readFile(file, "utf8")) as { scripts?: Record<string, unknown> };
    return typeof manifest?.scripts?.dev === "string" && manifest.scripts.dev.trim() !== "";
  } catch {
    return false;
  }
}

/** The preview origins' template: PREVIEW_ORIGIN, else `http://*.localhost:<the running preview server's port>`. */
export function previewOriginTemplate(): PreviewOriginTemplate | null {
  const configured = env().PREVIEW_ORIGIN;
  if (configured) return parsePreviewOriginTemplate(configured);
  const running = runningPreviewServer();
  return running ? localPreviewOriginTemplate(running.port) : null;
}

/** The project's preview origin (no trailing slash), or null while there is no preview server. */
export function projectPreviewOrigin(projectId: string): string | null {
  const template = previewOriginTemplate();
  return template ? previewOriginOf(template, previewLabel(sessionSecret(), projectId)) : null;
}

/** Every project's preview origin as one CSP source (the builder's frame-src), or null without a preview server. */
export function previewFrameSource(): string | null {
  const template = previewOriginTemplate();
  return template ? previewOriginSource(template) : null;
}
