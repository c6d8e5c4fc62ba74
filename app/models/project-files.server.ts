/**
 * The project's files as the builder sees them: a listing, one file
 * highlighted for reading, and the whole project as a zip. Read-only, and
 * through the Sandbox interface so local and Modal projects work alike.
 *
 * A project is opened with the provider that holds its files (the one stored
 * on the project), not SANDBOX_PROVIDER: after a switch, the old files are
 * still where they were, and opening the new provider would create an empty
 * sandbox. A project no run has touched has no sandbox and no files, and
 * nothing is opened (or created) for it.
 */
import { stat } from "node:fs/promises";
import { zip, type Zippable } from "fflate";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import plaintext from "highlight.js/lib/languages/plaintext";
import python from "highlight.js/lib/languages/python";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import type { Project } from "../../db/schema";
import { sandboxConfig } from "../../inngest/agent/context";
import {
  openSandbox,
  SandboxFileError,
  SandboxPathError,
  SandboxUnavailableError,
  type Sandbox,
  type SandboxProviderName,
} from "../../sandbox";
import { localWorkspacePath, readWorkspaceBytes } from "../../sandbox/local";
import { env } from "../env.server";

hljs.registerLanguage("xml", xml);
hljs.registerLanguage("css", css);
hljs.registerLanguage("javascript", javascript);
hljs.registerLanguage("typescript", typescript);
hljs.registerLanguage("json", json);
hljs.registerLanguage("markdown", markdown);
hljs.registerLanguage("bash", bash);
hljs.registerLanguage("python", python);
hljs.registerLanguage("plaintext", plaintext);

/** What these functions need of a project row. */
export type ProjectRef = Pick<Project, "id" | "sandboxProvider" | "sandboxId">;

/** Files listed for the tree. */
export const MAX_LISTED_FILES = 2000;
/** Bytes of a file shown (and highlighted) in the code view. */
export const MAX_VIEW_BYTES = 256 * 1024;
/** Files in a zip, bytes per file, bytes in all: a download is bounded like everything else. */
export const MAX_ZIP_FILES = 5000;
export const MAX_ZIP_FILE_BYTES = 16 * 1024 * 1024;
export const MAX_ZIP_TOTAL_BYTES = 100 * 1024 * 1024;

export interface ProjectFileList {
  /** Workspace-relative POSIX paths in tree order (node_modules/ and .git/ contents left out). */
  files: string[];
  /** More files exist than were listed. */
  truncated: boolean;
  /** Set when the project's sandbox could not be opened (e.g. Modal without credentials): why, for the page to say. */
  unavailable?: string;
}

export interface ProjectFile {
  path: string;
  /** Size of the whole file. */
  bytes: number;
  /** Only the first MAX_VIEW_BYTES are in html. */
  truncated: boolean;
  /** Contains NUL bytes (or is mostly not UTF-8): html is null. */
  binary: boolean;
  /** The highlight.js language used ("plaintext" when none fits). */
  language: string;
  /** highlight.js output, HTML-escaped by it; null for binary files. */
  html: string | null;
}

/** The project's files, or an empty list when it has no sandbox yet. */
export async function listProjectFiles(
  project: ProjectRef,
  options: { maxEntries?: number } = {},
): Promise<ProjectFileList> {
  let sandbox: Sandbox | null;
  try {
    sandbox = await openProjectSandbox(project);
  } catch (error) {
    if (error instanceof SandboxUnavailableError) return { files: [], truncated: false, unavailable: error.message };
    throw error;
  }
  if (!sandbox) return { files: [], truncated: false };
  const listing = await sandbox.listFiles("", { maxEntries: options.maxEntries ?? MAX_LISTED_FILES });
  return { files: listing.files, truncated: listing.truncated };
}

/**
 * One file, highlighted. A path that is missing, a folder, or outside the
 * workspace (`..`, absolute, a symlink out) throws a 404 Response, as does
 * any path of a project with no sandbox.
 */
export async function readProjectFile(project: ProjectRef, filePath: string): Promise<ProjectFile> {
  let sandbox: Sandbox | null;
  try {
    sandbox = await openProjectSandbox(project);
  } catch (error) {
    throw unavailable(error);
  }
  if (!sandbox) throw fileNotFound();
  let read;
  try {
    read = await sandbox.readFile(filePath, { maxBytes: MAX_VIEW_BYTES });
  } catch (error) {
    if (error instanceof SandboxPathError || error instanceof SandboxFileError) throw fileNotFound();
    throw error;
  }
  const binary = read.binary !== undefined || looksBinary(read.content);
  const language = languageFor(read.path);
  return {
    path: read.path,
    bytes: read.bytes,
    truncated: read.truncated,
    binary,
    language,
    html: binary ? null : highlight(read.content, language),
  };
}

/**
 * Every listed file in a zip, under a folder named after the project. Nothing
 * is left out silently: when the listing or a file was cut, or a file could
 * not be read, TRUNCATED.txt in the zip says what and why. A project with no
 * sandbox gives an empty zip; one whose sandbox cannot be opened throws a 503
 * Response.
 */
export async function zipProject(
  project: ProjectRef & Pick<Project, "title">,
  options: { maxFiles?: number } = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const maxFiles = options.maxFiles ?? MAX_ZIP_FILES;
  const folder = projectSlug(project.title);
  const entries: Zippable = {};
  const notes: string[] = [];
  let sandbox: Sandbox | null;
  try {
    sandbox = await openProjectSandbox(project);
  } catch (error) {
    throw unavailable(error);
  }
  if (sandbox) {
    const listing = await sandbox.listFiles("", { maxEntries: maxFiles });
    if (listing.truncated) {
      notes.push(
        `The project has more than ${maxFiles} files; only the first ${maxFiles} (in tree order) are in this zip.`,
      );
    }
    const location = await sandbox.preview().catch(() => null);
    const localRoot = location?.kind === "directory" ? location.path : null;
    let total = 0;
    for (const file of listing.files) {
      if (total >= MAX_ZIP_TOTAL_BYTES) {
        notes.push(`${file}: left out, the zip already holds ${MAX_ZIP_TOTAL_BYTES} bytes (the limit).`);
        continue;
      }
      const maxBytes = Math.min(MAX_ZIP_FILE_BYTES, MAX_ZIP_TOTAL_BYTES - total);
      try {
        const read = localRoot
          ? await readLocalBytes(localRoot, file, maxBytes)
          : await readTextAsBytes(sandbox, file, maxBytes);
        entries[`${folder}/${file}`] = read.data;
        total += read.data.length;
        if (read.truncated) notes.push(`${file}: cut to its first ${read.data.length} of ${read.bytes} bytes.`);
        if (read.lossy)
          notes.push(`${file}: not valid UTF-8 text; copied as text, so its bytes may differ from the original.`);
      } catch (error) {
        if (!(error instanceof SandboxPathError || error instanceof SandboxFileError)) throw error;
        notes.push(`${file}: left out, ${error.message}.`);
      }
    }
  }
  if (notes.length > 0) {
    entries[`${folder}/TRUNCATED.txt`] = new TextEncoder().encode(
      `This zip does not hold the whole project:\n\n${notes.map((note) => `- ${note}`).join("\n")}\n`,
    );
  }
  // fflate's async zip deflates large files in worker threads: a big download does not stall the server.
  // (Its output is a fresh ArrayBuffer, never shared memory, which is what a Response body takes.)
  return new Promise((resolve, reject) =>
    zip(entries, (error, data) => (error ? reject(error) : resolve(data as Uint8Array<ArrayBuffer>))),
  );
}

/** "My Todo App!" -> "my-todo-app": the zip's name and its top folder. */
export function projectSlug(title: string): string {
  const slug = title
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60)
    .replace(/-+$/, "");
  return slug || "project";
}

/** The highlight.js language for a file name; "plaintext" when none of ours fits. */
export function languageFor(filePath: string): string {
  const name = filePath.slice(filePath.lastIndexOf("/") + 1).toLowerCase();
  const extension = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : "";
  return LANGUAGES[extension] ?? (name === "dockerfile" || name === "makefile" ? "bash" : "plaintext");
}

const LANGUAGES: Record<string, string> = {
  html: "xml",
  htm: "xml",
  xml: "xml",
  svg: "xml",
  css: "css",
  js: "javascript",
  mjs: "javascript",
  cjs: "javascript",
  jsx: "javascript",
  ts: "typescript",
  mts: "typescript",
  cts: "typescript",
  tsx: "typescript",
  json: "json",
  map: "json",
  md: "markdown",
  markdown: "markdown",
  sh: "bash",
  bash: "bash",
  py: "python",
};

/** highlight.js escapes every character it emits (`<` -> `&lt;`), so its output is safe to insert as HTML. */
export function highlight(content: string, language: string): string {
  try {
    return hljs.highlight(content, { language, ignoreIllegals: true }).value;
  } catch {
    return escapeHtml(content);
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** NUL bytes, or mostly undecodable bytes (U+FFFD after UTF-8 decoding): not text to show. */
export function looksBinary(content: string): boolean {
  if (content.includes("\0")) return true;
  let replaced = 0;
  for (const c of content) if (c === "\uFFFD") replaced++;
  return replaced > 8 && replaced > content.length / 20;
}

/** A sandbox that cannot be opened (Modal without credentials, …) answers 503 with the reason; other errors pass. */
function unavailable(error: unknown): unknown {
  if (!(error instanceof SandboxUnavailableError)) return error;
  return new Response(`The project's files are unavailable: ${error.message}`, {
    status: 503,
    statusText: "Service Unavailable",
  });
}

function fileNotFound(): Response {
  return new Response("File not found", { status: 404, statusText: "Not Found" });
}

/**
 * The project's sandbox on the provider that holds its files, or null when it
 * has none (never touched by a run, or its local folder is gone). Opening a
 * local sandbox creates its folder, so that is checked first.
 */
export async function openProjectSandbox(project: ProjectRef): Promise<Sandbox | null> {
  const provider = project.sandboxProvider as SandboxProviderName | null;
  if (provider !== "local" && provider !== "modal") return null;
  const config = { ...sandboxConfig(env()), provider };
  if (provider === "local") {
    const folder = await stat(localWorkspacePath(config.dataDir, project.id)).catch(() => null);
    if (!folder?.isDirectory()) return null;
  }
  return openSandbox(config, project);
}

interface BytesRead {
  data: Uint8Array;
  bytes: number;
  truncated: boolean;
  lossy: boolean;
}

/**
 * A local workspace file's exact bytes (the interface reads text, which would
 * mangle images), behind the same path checks as the local sandbox's readFile.
 */
async function readLocalBytes(root: string, file: string, maxBytes: number): Promise<BytesRead> {
  const read = await readWorkspaceBytes(root, file, maxBytes);
  return { data: read.data, bytes: read.bytes, truncated: read.truncated, lossy: false };
}

/** Other providers: the interface's text read, marked lossy when it was not UTF-8. */
async function readTextAsBytes(sandbox: Sandbox, file: string, maxBytes: number): Promise<BytesRead> {
  const read = await sandbox.readFile(file, { maxBytes });
  const data = new TextEncoder().encode(read.content);
  return { data, bytes: read.bytes, truncated: read.truncated, lossy: read.content.includes("\uFFFD") };
}
