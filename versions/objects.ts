/**
 * Git objects written and read in this process, for the versions of steps
 * whose changed files are known (a write_file): hashing a blob, a few trees
 * and a commit here costs well under a millisecond, where git's commands cost
 * a process each (decision 026, addendum). Only loose objects are written;
 * git reads them like its own, and `pack()` packs them.
 *
 * `TreeModel` is an in-memory copy of one tree of the history: the files a
 * step changed are set in it, and only the folders on their way are hashed
 * again.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { deflateSync, inflateSync } from "node:zlib";

export type ObjectType = "blob" | "tree" | "commit";

export const TREE_MODE = "40000";

export function hashObject(type: ObjectType, body: Buffer): { sha: string; raw: Buffer } {
  const raw = Buffer.concat([Buffer.from(`${type} ${body.length}\0`), body]);
  return { sha: createHash("sha1").update(raw).digest("hex"), raw };
}

function objectPath(gitDir: string, sha: string): string {
  return path.join(gitDir, "objects", sha.slice(0, 2), sha.slice(2));
}

/**
 * Objects up to this size (compressed) are written with synchronous calls: a few tens of microseconds of the event
 * loop each, where the same calls through the thread pool cost 3-4 times as long on this disk, more under load
 * (decision 026, stop 23). A step's blob, trees and commit are all this small; a larger blob is written async.
 */
export const SYNC_WRITE_BYTES = 64 * 1024;

/** Writes the object unless the repository has it loose already; its sha either way. */
export async function writeObject(gitDir: string, type: ObjectType, body: Buffer): Promise<string> {
  const { sha, raw } = hashObject(type, body);
  const file = objectPath(gitDir, sha);
  const compressed = deflateSync(raw);
  if (compressed.length <= SYNC_WRITE_BYTES) {
    writeObjectSync(gitDir, file, compressed);
    return sha;
  }
  if (await stat(file).catch(() => null)) return sha;
  // Written aside, then renamed into place: a reader never sees half an object, and one written meanwhile by
  // another writer has the same bytes. The folder is made only when missing (a new file costs on a slow disk).
  const temp = tempObjectPath(gitDir);
  await writeFile(temp, compressed, { mode: 0o444 });
  try {
    await rename(temp, file).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
      await mkdir(path.dirname(file), { recursive: true });
      await rename(temp, file);
    });
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  return sha;
}

function tempObjectPath(gitDir: string): string {
  return path.join(gitDir, "objects", `dyno-tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
}

/** writeObject's steps (aside, then renamed into place), for a small object. */
function writeObjectSync(gitDir: string, file: string, compressed: Buffer): void {
  if (existsSync(file)) return;
  const temp = tempObjectPath(gitDir);
  writeFileSync(temp, compressed, { mode: 0o444 });
  try {
    try {
      renameSync(temp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      mkdirSync(path.dirname(file), { recursive: true });
      renameSync(temp, file);
    }
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/** A loose object's body, or null when it is not loose (packed, or absent). */
export async function readLooseObject(gitDir: string, sha: string): Promise<{ type: string; body: Buffer } | null> {
  const compressed = await readFile(objectPath(gitDir, sha)).catch(() => null);
  if (!compressed) return null;
  const raw = inflateSync(compressed);
  const nul = raw.indexOf(0);
  const [type] = raw.subarray(0, nul).toString().split(" ");
  return { type: type!, body: raw.subarray(nul + 1) };
}

interface FileEntry {
  mode: string;
  sha: string;
}

interface Folder {
  /** null while something under it changed and it has not been hashed again. */
  sha: string | null;
  entries: Map<string, FileEntry | Folder>;
}

const isFolder = (entry: FileEntry | Folder): entry is Folder => "entries" in entry;

/** Calls `visit` with every file under `folder`, by its path (`prefix` and the names on the way). */
function visitFiles(folder: Folder, prefix: string, visit: (file: string, entry: FileEntry) => void): void {
  for (const [name, entry] of folder.entries) {
    if (isFolder(entry)) visitFiles(entry, `${prefix}${name}/`, visit);
    else visit(`${prefix}${name}`, entry);
  }
}

/** Git's order of tree entries: by bytes, a folder's name compared as if it ended in "/". */
function treeOrder(a: [string, FileEntry | Folder], b: [string, FileEntry | Folder]): number {
  const key = ([name, entry]: [string, FileEntry | Folder]) => Buffer.from(isFolder(entry) ? `${name}/` : name);
  return Buffer.compare(key(a), key(b));
}

export class TreeModel {
  private constructor(private readonly root: Folder) {}

  /** From `git ls-tree -r -t -z --full-tree <tree>` output, whose sha is `sha`. */
  static fromListing(sha: string, listing: Buffer): TreeModel {
    const root: Folder = { sha, entries: new Map() };
    const model = new TreeModel(root);
    for (const line of listing.toString("utf8").split("\0")) {
      if (!line) continue;
      const tab = line.indexOf("\t");
      const [mode, type, objectSha] = line.slice(0, tab).split(" ");
      const parts = line.slice(tab + 1).split("/");
      const folder = model.folder(parts.slice(0, -1), false);
      if (!folder) throw new Error(`ls-tree listed ${line.slice(tab + 1)} before its folder`);
      const name = parts.at(-1)!;
      folder.entries.set(
        name,
        type === "tree" ? { sha: objectSha!, entries: new Map() } : { mode: mode!, sha: objectSha! },
      );
    }
    return model;
  }

  /** The tree's sha, or null when something changed since it was last hashed. */
  get sha(): string | null {
    return this.root.sha;
  }

  private folder(parts: string[], create: boolean, dirty = false): Folder | null {
    let folder = this.root;
    if (dirty) folder.sha = null;
    for (const part of parts) {
      let next = folder.entries.get(part);
      if (!next) {
        if (!create) return null;
        next = { sha: null, entries: new Map() };
        folder.entries.set(part, next);
      }
      if (!isFolder(next)) return null;
      if (dirty) next.sha = null;
      folder = next;
    }
    return folder;
  }

  /** The file at `file` ("a/b.txt"), or undefined when the tree has none there. */
  get(file: string): FileEntry | undefined {
    const parts = file.split("/");
    const entry = this.folder(parts.slice(0, -1), false)?.entries.get(parts.at(-1)!);
    return entry && !isFolder(entry) ? entry : undefined;
  }

  /** Every file of the tree, by path ("a/b.txt"). */
  files(): Map<string, FileEntry> {
    const all = new Map<string, FileEntry>();
    visitFiles(this.root, "", (file, entry) => all.set(file, entry));
    return all;
  }

  /** The paths of the files under `folder` ("a/b"), none when the tree has no folder there. */
  filesUnder(folder: string): string[] {
    const start = this.folder(folder.split("/"), false);
    const found: string[] = [];
    if (start) visitFiles(start, `${folder}/`, (file) => found.push(file));
    return found;
  }

  /** Sets a file; false (and nothing changed) when a file stands where one of its folders would go, or a folder where it would. */
  set(file: string, entry: FileEntry): boolean {
    const parts = file.split("/");
    const folders = parts.slice(0, -1);
    // Checked before anything is marked: a refused set leaves the model as it was.
    let probe: Folder | FileEntry | undefined = this.root;
    for (const part of folders) {
      probe = isFolder(probe) ? probe.entries.get(part) : undefined;
      if (!probe) break;
      if (!isFolder(probe)) return false;
    }
    const existing = probe && isFolder(probe) ? probe.entries.get(parts.at(-1)!) : undefined;
    if (existing && isFolder(existing)) return false;
    this.folder(folders, true, true)!.entries.set(parts.at(-1)!, { ...entry });
    return true;
  }

  /** Removes a file, and folders left empty (git keeps no empty tree). */
  remove(file: string): void {
    const parts = file.split("/");
    if (!this.get(file)) return;
    const chain: Folder[] = [this.root];
    for (const part of parts.slice(0, -1)) chain.push(chain.at(-1)!.entries.get(part) as Folder);
    for (const folder of chain) folder.sha = null;
    chain.at(-1)!.entries.delete(parts.at(-1)!);
    for (let i = chain.length - 1; i > 0; i--) {
      if (chain[i]!.entries.size > 0) break;
      chain[i - 1]!.entries.delete(parts[i - 1]!);
    }
  }

  /**
   * Hashes the folders that changed and returns the root's sha. With `gitDir`, their tree objects are written
   * (a step's version); without, only hashed (checking the model against a tree git wrote).
   */
  async hash(gitDir?: string): Promise<string> {
    const visit = async (folder: Folder): Promise<string> => {
      if (folder.sha) return folder.sha;
      const parts: Buffer[] = [];
      for (const [name, entry] of [...folder.entries].sort(treeOrder)) {
        const [mode, sha] = isFolder(entry) ? [TREE_MODE, await visit(entry)] : [entry.mode, entry.sha];
        parts.push(Buffer.from(`${mode} ${name}\0`), Buffer.from(sha, "hex"));
      }
      const body = Buffer.concat(parts);
      folder.sha = gitDir ? await writeObject(gitDir, "tree", body) : hashObject("tree", body).sha;
      return folder.sha;
    };
    return visit(this.root);
  }
}
