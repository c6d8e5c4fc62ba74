/**
 * A walk of the workspace in this process, for the versions of steps whose
 * changed files are not known (a command, a run's start and end): every file
 * history keeps, with its blob's sha. Like git's index, it remembers each
 * file's stat data with the sha it hashed to, and reads again only the files
 * whose stat changed, so a step that changed a few files of 2,000 costs a
 * readdir per folder and an lstat per file, not five git commands
 * (decision 026, second addendum).
 *
 * It only walks the plain case. Anything a full take (git's own commands)
 * handles better makes it answer "unsure": a symlink, a file over the size
 * cap or not a regular file, a nested repository, a name git treats
 * specially or that is not UTF-8. The caller then takes the version with git.
 */
import { lstatSync, readdirSync, readFileSync, type BigIntStats } from "node:fs";
import path from "node:path";
import { writeObject } from "./objects";

export interface ScannedFile {
  mode: "100644" | "100755";
  sha: string;
}

export type Scan =
  | {
      files: Map<string, ScannedFile>;
      /** How many files the walk read (the rest were known by their stat data). */
      read: number;
      unsure?: undefined;
    }
  | { unsure: string };

interface Known {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  mode: bigint;
  sha: string;
}

/**
 * A file whose mtime is this close to the start of a walk may still be written within the same timestamp tick
 * (Linux stamps files with its coarse clock, one tick of 1 to 10 ms): its sha is not remembered, so the next walk
 * reads it again. Twice the longest tick.
 */
const RACY_MARGIN_NS = 20_000_000n;
/** Entries between two yields to the event loop, so a large workspace does not hold it for long. */
const ENTRIES_PER_SLICE = 512;

export class WorkspaceScanner {
  private known = new Map<string, Known>();

  constructor(
    private readonly workTree: string,
    private readonly gitDir: string,
    private readonly maxFileBytes: number,
    /** Folder names never walked, at any depth (node_modules, build output, .git). */
    private readonly excludedFolders: readonly string[],
    /** Whether history stores `file` as it is ("yes"), never ("excluded"), or leaves it to git ("unsure"). */
    private readonly storable: (file: string) => "yes" | "excluded" | "unsure",
    private readonly racyMarginNs = RACY_MARGIN_NS,
  ) {}

  /** Forgets every file's stat data and sha: the next walk reads each file again. */
  forget(): void {
    this.known.clear();
  }

  /** Every file history would keep, by path, or why this walk leaves the take to git. */
  async scan(): Promise<Scan> {
    const started = BigInt(Date.now()) * 1_000_000n;
    const files = new Map<string, ScannedFile>();
    const reads = { count: 0 };
    const folders: string[] = [""];
    let sinceYield = 0;
    while (folders.length > 0) {
      const folder = folders.pop()!;
      let entries;
      try {
        entries = readdirSync(folder ? path.join(this.workTree, folder) : this.workTree, { withFileTypes: true });
      } catch (error) {
        return { unsure: `${folder || "the workspace"}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
      }
      if (folder && entries.some((entry) => entry.name === ".git")) return { unsure: `${folder} is a repository` };
      for (const entry of entries) {
        if (++sinceYield >= ENTRIES_PER_SLICE) {
          sinceYield = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
        const file = folder ? `${folder}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (this.excludedFolders.includes(entry.name)) continue;
          if (this.storable(`${file}/x`) !== "yes") return { unsure: `${file}: a folder name left to git` };
          folders.push(file);
          continue;
        }
        if (!entry.isFile()) return { unsure: `${file}: not a regular file` };
        if (this.storable(file) !== "yes") return { unsure: `${file}: a name left to git` };
        const info = lstatSync(path.join(this.workTree, file), { bigint: true, throwIfNoEntry: false });
        // Gone since the readdir: a later walk sees it as it is then; this one leaves the take to git.
        if (!info?.isFile()) return { unsure: `${file} changed during the walk` };
        if (info.size > BigInt(this.maxFileBytes)) return { unsure: `${file} is over the size cap` };
        files.set(file, {
          mode: info.mode & 0o100n ? "100755" : "100644",
          sha: await this.shaOf(file, info, started, reads),
        });
      }
    }
    for (const file of this.known.keys()) if (!files.has(file)) this.known.delete(file);
    return { files, read: reads.count };
  }

  /** The file's blob sha: remembered when its stat data is unchanged, else read, hashed and written. */
  private async shaOf(file: string, info: BigIntStats, started: bigint, reads: { count: number }): Promise<string> {
    const known = this.known.get(file);
    if (
      known &&
      known.size === info.size &&
      known.mtimeNs === info.mtimeNs &&
      known.ctimeNs === info.ctimeNs &&
      known.ino === info.ino &&
      known.mode === info.mode
    )
      return known.sha;
    reads.count++;
    const sha = await writeObject(this.gitDir, "blob", readFileSync(path.join(this.workTree, file)));
    // A change in the same tick as the last one could leave size and times as they were: such a file is read again.
    const settled = info.mtimeNs + this.racyMarginNs < started && info.ctimeNs + this.racyMarginNs < started;
    if (settled)
      this.known.set(file, {
        size: info.size,
        mtimeNs: info.mtimeNs,
        ctimeNs: info.ctimeNs,
        ino: info.ino,
        mode: info.mode,
        sha,
      });
    else this.known.delete(file);
    return sha;
  }
}
