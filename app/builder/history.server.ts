/**
 * The History view's data and its form intents (decisions 026, 027): the
 * project's versions, the selected version's diff (rendered with diff2html)
 * or files, and restore / undo.
 */
import { html as diffHtml } from "diff2html";
import type { Db } from "../../db/client";
import type { Project } from "../../db/schema";
import type { ProjectFile } from "~/models/project-files.server";
import {
  ExportBusyError,
  ExportError,
  exportToGit,
  projectRemote,
  projectVersions,
  redoRun,
  RestoreRefusedError,
  restoreProjectVersion,
  undoRun,
  versionDiff,
  versionFile,
  versionFiles,
  type DiffView,
  type FileDiff,
  type RemoteView,
  type RestoreOutcome,
  type VersionsView,
} from "~/models/versions.server";

export type HistoryVersion = VersionsView["versions"][number];

export interface RenderedFileDiff extends Omit<FileDiff, "diff"> {
  /** The unified diff, for the browser to draw with highlighting. */
  diff: string | null;
  /** diff2html's rendering (it escapes the file's text), shown before (or without) JavaScript. */
  html: string | null;
}

export interface HistoryData {
  view: VersionsView;
  remote: RemoteView | null;
  selected:
    | { kind: "diff"; versionId: string; diff: Omit<DiffView, "files"> & { files: RenderedFileDiff[] } }
    | {
        kind: "files";
        versionId: string;
        number: number;
        files: string[];
        file: ProjectFile | null;
        fileError?: string;
      }
    | null;
  error?: string;
}

export async function loadHistory(
  db: Db,
  project: Project,
  params: { versionId: string | null; show: "diff" | "files"; scope: "step" | "run"; file: string | null },
): Promise<HistoryData> {
  const [view, remote] = await Promise.all([projectVersions(db, project), projectRemote(db, project)]);
  if (!params.versionId || !view.available) return { view, remote, selected: null };
  const version = view.versions.find((v) => v.id === params.versionId);
  if (!version) return { view, remote, selected: null, error: "That version is not in this project's history." };
  try {
    return { view, remote, selected: await selectedVersion(db, project, version, params) };
  } catch (error) {
    // A pruned version (or one a diff needs) is listed but has no files: said in the panel, not as an error page.
    if (error instanceof Response && error.status === 410)
      return { view, remote, selected: null, error: await error.text() };
    throw error;
  }
}

async function selectedVersion(
  db: Db,
  project: Project,
  version: HistoryVersion,
  params: { show: "diff" | "files"; scope: "step" | "run"; file: string | null },
): Promise<HistoryData["selected"]> {
  if (params.show === "files") {
    const files = (await versionFiles(db, project, version.id)).map((f) => f.path);
    let file: ProjectFile | null = null;
    let fileError: string | undefined;
    if (params.file) {
      try {
        file = await versionFile(db, project, version.id, params.file);
      } catch (error) {
        if (!(error instanceof Response)) throw error;
        fileError = `No file named “${params.file}” in version ${version.number}.`;
      }
    }
    return { kind: "files", versionId: version.id, number: version.number, files, file, fileError };
  }
  const diff = await versionDiff(db, project, version.id, params.scope);
  return {
    kind: "diff",
    versionId: version.id,
    diff: {
      ...diff,
      files: diff.files.map((f) => ({
        ...f,
        html: f.diff ? diffHtml(f.diff, { outputFormat: "line-by-line", drawFileList: false }) : null,
      })),
    },
  };
}

const VERSION_INTENTS = new Set(["version-restore", "version-undo-run", "version-redo-run", "version-export"]);
type VersionIntent = "version-restore" | "version-undo-run" | "version-redo-run" | "version-export";

export function isVersionIntent(intent: unknown): intent is VersionIntent {
  return typeof intent === "string" && VERSION_INTENTS.has(intent);
}

/** Each intent that restores files: what it restores (named by the form) and how the builder is told. */
const RESTORES: Record<
  Exclude<VersionIntent, "version-export">,
  {
    restore: (db: Db, project: Project, form: FormData) => Promise<RestoreOutcome>;
    said: (o: RestoreOutcome) => string;
  }
> = {
  "version-restore": {
    restore: (db, project, form) => restoreProjectVersion(db, project, String(form.get("versionId") ?? "")),
    said: (o) => `Restored version ${o.restoredNumber} (saved as version ${o.newNumber}, so it can be undone).`,
  },
  "version-undo-run": {
    restore: (db, project, form) => undoRun(db, project, String(form.get("runId") ?? "")),
    said: (o) => `Undid the run: the files are back to version ${o.restoredNumber} (saved as version ${o.newNumber}).`,
  },
  "version-redo-run": {
    restore: (db, project, form) => redoRun(db, project, String(form.get("runId") ?? "")),
    said: (o) =>
      `Redid the run: the files are back to version ${o.restoredNumber}, as the run left them (saved as version ${o.newNumber}).`,
  },
};

export type VersionActionResult =
  | { ok: true; intent: string; message: string; versionNumber: number }
  | { ok: false; intent: string; error: string; status: number };

export async function handleVersionAction(
  db: Db,
  project: Project,
  intent: VersionIntent,
  form: FormData,
): Promise<VersionActionResult> {
  if (intent === "version-export") {
    try {
      const pushed = await exportToGit(db, project, {
        url: String(form.get("url") ?? ""),
        branch: String(form.get("branch") ?? ""),
        token: String(form.get("token") ?? ""),
      });
      return {
        ok: true,
        intent,
        versionNumber: pushed.number,
        message: `Pushing the history (up to version ${pushed.number}) to the branch ${pushed.branch}…`,
      };
    } catch (error) {
      if (error instanceof ExportBusyError) return { ok: false, intent, error: error.message, status: 409 };
      if (error instanceof ExportError) return { ok: false, intent, error: error.message, status: 400 };
      throw error;
    }
  }
  try {
    const { restore, said } = RESTORES[intent];
    const outcome = await restore(db, project, form);
    const app = outcome.appRestarted ? " The app is restarting on the restored files." : "";
    return { ok: true, intent, versionNumber: outcome.newNumber, message: `${said(outcome)}${app}` };
  } catch (error) {
    if (error instanceof RestoreRefusedError) return { ok: false, intent, error: error.message, status: 409 };
    if (error instanceof Response && error.status === 404) {
      return { ok: false, intent, error: "That version is not in this project's history.", status: 404 };
    }
    throw error;
  }
}
