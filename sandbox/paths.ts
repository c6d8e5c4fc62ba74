/**
 * Path safety for the tools' file operations. A tool path is relative to the
 * workspace root; the model is not trusted, so anything that would reach
 * outside the workspace (lexically, or through a symbolic link made by a
 * command) is refused with a SandboxPathError that says why.
 */
import { lstat, readlink } from "node:fs/promises";
import path from "node:path";
import { SandboxPathError } from "./types";

export const MAX_PATH_CHARS = 4096;
export const MAX_NAME_BYTES = 255;
/** The kernel's own limit (ELOOP) on links followed while resolving one path. */
const MAX_SYMLINK_HOPS = 40;

/** The path as the error message shows it: quoted, control characters escaped, long ones cut. */
function show(input: string): string {
  const quoted = JSON.stringify(input);
  return quoted.length > 120 ? `${quoted.slice(0, 100)}…" (${input.length} characters)` : quoted;
}

/**
 * The workspace-relative POSIX form of a tool path ("" is the workspace root),
 * by lexical rules only: a leading "/" means the workspace root (models often
 * write "/src/a.js"), "\" counts as a separator (Windows-style input), "." and
 * empty segments drop out, and ".." may not climb above the root.
 *
 * This is all the Modal provider needs (its files and commands share one
 * remote box); the local provider also checks symlinks (resolveWorkspacePath).
 */
export function normalizeWorkspacePath(input: string): string {
  if (typeof input !== "string") throw new SandboxPathError(`Path must be a string, got ${typeof input}`);
  if (input.includes("\0")) throw new SandboxPathError(`Path ${show(input)} contains a NUL byte`);
  if (input.length > MAX_PATH_CHARS) {
    throw new SandboxPathError(`Path ${show(input)} is longer than ${MAX_PATH_CHARS} characters`);
  }
  if (input.startsWith("~")) {
    throw new SandboxPathError(
      `Path ${show(input)} starts with "~", which is not expanded: give a path relative to the workspace root, like "src/index.js"`,
    );
  }
  const segments: string[] = [];
  for (const segment of input.replaceAll("\\", "/").split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (segments.length === 0) {
        throw new SandboxPathError(`Path ${show(input)} leaves the workspace: ".." climbs above the workspace root`);
      }
      segments.pop();
      continue;
    }
    if (Buffer.byteLength(segment) > MAX_NAME_BYTES) {
      throw new SandboxPathError(`Path ${show(input)} has a name longer than ${MAX_NAME_BYTES} bytes`);
    }
    segments.push(segment);
  }
  return segments.join("/");
}

export interface ResolvedPath {
  /** Workspace-relative POSIX path ("" for the root), as tools report it. */
  relative: string;
  /** Absolute host path with every symlink resolved; always inside the workspace. */
  real: string;
}

export function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * Resolves a tool path inside the workspace whose real path (fs.realpath) is
 * `workspaceReal`, following symlinks the way the kernel would, including
 * dangling ones and missing tails (a file about to be written). Throws
 * SandboxPathError when the result lies outside the workspace.
 *
 * Callers open `real`, not the path they were given, so what was checked is
 * what gets opened; opening it with O_NOFOLLOW catches a last component that
 * was swapped for a link in between. (A parent folder swapped by a command
 * running at the same moment is not caught; the agent runs its tools one at a
 * time and the local provider kills a command's leftovers when it ends.)
 */
export async function resolveWorkspacePath(workspaceReal: string, input: string): Promise<ResolvedPath> {
  const relative = normalizeWorkspacePath(input);
  const real = await resolveAllowingMissing(workspaceReal, relative ? relative.split("/") : [], input);
  if (!isInside(workspaceReal, real)) {
    throw new SandboxPathError(
      `Path ${show(input)} leaves the workspace: it goes through a symbolic link that points outside it`,
    );
  }
  return { relative, real };
}

/**
 * realpath(start/segments...) that tolerates a missing tail. Walks one name at
 * a time: a symlink's target is spliced into the names still to walk (from "/"
 * when absolute), ".." goes to the parent of the real folder reached so far,
 * and once a name does not exist the rest is joined as is (nothing below a
 * missing name can be a link).
 */
async function resolveAllowingMissing(start: string, segments: string[], input: string): Promise<string> {
  let current = start;
  const pending = [...segments];
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "" || name === ".") continue;
    if (name === "..") {
      current = path.dirname(current);
      continue;
    }
    const candidate = path.join(current, name);
    const stat = await lstat(candidate).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT" || error.code === "ENOTDIR") return null;
      throw error;
    });
    if (!stat) {
      const rest = pending.filter((segment) => segment !== "" && segment !== ".");
      // Lexical from here on; a ".." below a missing folder cannot be followed by the kernel either.
      return path.resolve(candidate, ...rest);
    }
    if (stat.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) {
        throw new SandboxPathError(`Path ${show(input)} goes through too many symbolic links`);
      }
      const target = await readlink(candidate);
      if (path.isAbsolute(target)) current = path.parse(target).root;
      pending.unshift(...target.split("/"));
      continue;
    }
    current = candidate;
  }
  return current;
}

/** Name order for listings: by UTF-16 code unit, the same on every machine (no locale). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The order listFiles returns: folder by folder (tree order), names compared
 * by code unit, so a folder's files stay together ("a/b" before "a.txt").
 */
export function compareListedPaths(a: string, b: string): number {
  const left = a.split("/");
  const right = b.split("/");
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const order = compareNames(left[i]!, right[i]!);
    if (order !== 0) return order;
  }
  return left.length - right.length;
}
