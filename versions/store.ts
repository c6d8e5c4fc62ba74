/**
 * A project's history: a git repository kept outside the workspace
 * (`<dataDir>/history/<projectId>.git`), whose work tree is the workspace.
 * The sandbox never sees it (the data folder is not bound into bubblewrap),
 * so nothing the agent runs can rewrite it. Decision 026.
 *
 * Only plumbing is used, so nothing in the workspace is read as
 * configuration:
 * - files are found with `ls-files` and our own exclude list only (never the
 *   workspace's .gitignore), then staged with `update-index`, which ignores
 *   ignore rules altogether;
 * - `$GIT_DIR/info/attributes` unsets every content-changing attribute, and
 *   it outranks any .gitattributes in the workspace;
 * - the workspace's own `.git` folder is never a path git stores; a nested
 *   repository (`sub/.git`) is named as skipped, not stored as a gitlink;
 * - files over the size cap, and names that are not UTF-8, are named as
 *   skipped, and stay out of history (a restore leaves them alone, like
 *   node_modules).
 */
import { closeSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { diffLines } from "diff";
import { git, GitError, gitText, nulFields, type GitOptions } from "./git";
import { GitShell, shellQuote } from "./git-shell";
import { readLooseObject, SYNC_WRITE_BYTES, TreeModel, writeObject } from "./objects";
import { WorkspaceScanner } from "./workspace-scan";
import { DEFAULT_WATCH_LIMITS, lstatOrNone, WorkspaceWatch, type WatchLimits } from "./workspace-watch";

/** Folders that never enter history, at any depth: dependencies and build output. */
export const EXCLUDED_FOLDERS = [
  "node_modules",
  ".git",
  "dist",
  "build",
  ".vite",
  ".next",
  ".nuxt",
  ".svelte-kit",
  ".turbo",
  ".parcel-cache",
  ".cache",
  "coverage",
] as const;

/** Whether `name` is a folder name history never keeps. */
function isExcludedFolder(name: string): boolean {
  return (EXCLUDED_FOLDERS as readonly string[]).includes(name);
}

/** Wins over any .gitattributes in the workspace: content is stored and restored byte for byte. */
const ATTRIBUTES = "* !text !eol !filter !ident !working-tree-encoding !diff !merge !export-ignore !export-subst\n";

export const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/** The branch whose head is the newest version; every version is an ancestor of it. */
export const VERSIONS_REF = "refs/heads/versions";

export const DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024;

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface Snapshot {
  tree: string;
  /** Files that changed but were left out of history, and why. At most 50 named. */
  skipped: SkippedFile[];
}

export interface Taken {
  tree: string;
  /** null when nothing was committed (mode "tree", or "changed" with nothing new). */
  commit: string | null;
  /** What the commit changed from its parent. */
  changes: ChangeSummary | null;
  skipped: SkippedFile[];
}

export interface FileChange {
  path: string;
  status: "added" | "changed" | "deleted";
  /** null for a binary file. */
  linesAdded: number | null;
  linesDeleted: number | null;
}

export interface ChangeSummary {
  added: number;
  changed: number;
  deleted: number;
  files: FileChange[];
}

export interface TreeEntry {
  path: string;
  mode: string;
  bytes: number;
}

export class HistoryUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HistoryUnavailableError";
  }
}

const SAFE_PROJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function historyPath(dataDir: string, projectId: string): string {
  if (!SAFE_PROJECT_ID.test(projectId)) throw new Error(`unsafe project id ${JSON.stringify(projectId)}`);
  return path.join(path.resolve(dataDir), "history", `${projectId}.git`);
}

export class ProjectHistory {
  private ready: Promise<void> | undefined;

  constructor(
    readonly gitDir: string,
    readonly workTree: string,
    readonly maxFileBytes = DEFAULT_MAX_FILE_BYTES,
    /** false: every take runs git's commands (the reference the quick takes are checked and measured against). */
    private readonly quickTakes = true,
    /** The bound on the repository's size on disk: over it, the oldest versions are pruned (prune.ts). */
    readonly maxHistoryBytes = Number.POSITIVE_INFINITY,
    /** null: no feed of the workspace's changes (a command's take walks or runs git, as the feed's tests compare). */
    watchLimits: WatchLimits | null = DEFAULT_WATCH_LIMITS,
  ) {
    this.shell = new GitShell(gitDir, workTree);
    this.scanner = new WorkspaceScanner(workTree, gitDir, maxFileBytes, EXCLUDED_FOLDERS, storablePath);
    this.watch = watchLimits ? new WorkspaceWatch(workTree, EXCLUDED_FOLDERS, watchLimits) : null;
  }

  /** Runs the git commands of a take (git-shell.ts): one small shell forks them, not this process. */
  private readonly shell: GitShell;

  /** Which paths changed since the last take, for takes of unknown changes on a workspace of any size. */
  private readonly watch: WorkspaceWatch | null;

  /** Walks the workspace for takes of unknown changes, remembering each file's stat data and sha. */
  private readonly scanner: WorkspaceScanner;

  /** The newest tree this process knows entry by entry, for takes of known files (objects.ts); null: none yet. */
  private model: TreeModel | null = null;

  private async failed(code: number, what: string): Promise<void> {
    if (code === 0) return;
    const stderr = await readFile(path.join(this.gitDir, "dyno-staging", "err"), "utf8").catch(() => "");
    throw new GitError(`${what} failed (${code}): ${stderr.trim().split("\n")[0] ?? ""}`, stderr.slice(0, 4000), code);
  }

  private opts(extra: Partial<GitOptions> = {}): GitOptions {
    return { gitDir: this.gitDir, workTree: this.workTree, ...extra };
  }

  /** Creates the repository on first use and (re)writes the files that make it ours. Idempotent. */
  init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.gitDir, { recursive: true, mode: 0o700 });
      const head = await stat(path.join(this.gitDir, "HEAD")).catch(() => null);
      if (!head) await git(["init", "-q"], { gitDir: this.gitDir });
      await mkdir(path.join(this.gitDir, "info"), { recursive: true });
      await writeFile(path.join(this.gitDir, "info", "attributes"), ATTRIBUTES);
      await writeFile(path.join(this.gitDir, "info", "dyno-exclude"), EXCLUDED_FOLDERS.map((f) => `${f}/\n`).join(""));
      await mkdir(path.join(this.gitDir, "dyno-staging"), { recursive: true });
      await writeFile(path.join(this.gitDir, "dyno-staging", "take.sh"), TAKE_SCRIPT);
      // All 256 object folders, once: a take that had to make the folder of each object it writes would pay a
      // failed rename and a mkdir for most of them while the history is young (a new file costs up to 1 ms here).
      if (!(await stat(path.join(this.gitDir, "objects", "ff")).catch(() => null)))
        await Promise.all(
          Array.from({ length: 256 }, (_, i) =>
            mkdir(path.join(this.gitDir, "objects", i.toString(16).padStart(2, "0")), { recursive: true }),
          ),
        );
    })().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  /**
   * Removes lock files a killed git left behind. Only called by the one
   * writer of this repository (takes hold the project's version lock).
   */
  async clearStaleLocks(): Promise<void> {
    await Promise.all(
      ["index.lock", "HEAD.lock", `${VERSIONS_REF}.lock`].map((lock) =>
        unlink(path.join(this.gitDir, lock)).catch(() => {}),
      ),
    );
  }

  /** Brings the index in line with the workspace and writes its tree. */
  async snapshot(): Promise<Snapshot> {
    const { tree, skipped } = await this.take({ parent: null, message: "", mode: "tree" });
    return { tree, skipped };
  }

  /**
   * Takes a version: stages the workspace, writes its tree and (as `mode`
   * says) commits it on top of `parent` and counts what changed. All of it
   * runs in the history's long-lived shell (git-shell.ts): ls-files, then one
   * script for update-index, write-tree, commit-tree and diff-tree.
   * - "commit": always commits (a run's end, even with nothing new);
   * - "changed": commits only when the tree differs from the parent's;
   * - "tree": never commits.
   */
  async take(options: TakeOptions): Promise<Taken> {
    await this.init();
    if (!this.quickTakes || !options.parent || options.mode === "tree") return this.takeWithGit(options);
    const parent = { ...options, parent: options.parent };
    if (options.files) {
      const known = await this.takeKnownFiles(options.files, parent);
      if (known) {
        // The files it read may have changed since: they stay marked for the next take from the feed.
        if (this.watch?.baseline === parent.parent.tree) {
          this.watch.baseline = known.tree;
          this.watch.mark(options.files);
        }
        this.lastTake = "known files";
        return known;
      }
    }
    // Changes not known: the feed's paths when it covers the parent, else a walk, else git's commands. Whichever
    // runs, it reads the workspace after the drain, so its tree is the feed's next baseline.
    const watch = this.watch?.start() ? this.watch : null;
    const drained = watch ? await watch.drain() : { lost: "no feed" };
    try {
      const fromFeed =
        watch && !options.exact && drained.lost === undefined && watch.baseline === parent.parent.tree
          ? await this.takeChangedPaths(drained.paths, parent)
          : null;
      const taken = fromFeed ?? (await this.takeScanned(parent)) ?? (await this.takeWithGit(options));
      // A take that left files out names them every time (the version row lists them), which only a full one does.
      if (watch && drained.lost === undefined) watch.baseline = taken.skipped.length === 0 ? taken.tree : null;
      return taken;
    } catch (error) {
      if (watch) watch.baseline = null;
      throw error;
    }
  }

  /** How the last take of this process found its changes (the tests check which one ran). */
  lastTake: "known files" | "feed" | "walk" | "git" | null = null;

  /** Stops watching the workspace (a deleted project, or one this process no longer keeps open). */
  close(): void {
    this.watch?.stop();
  }

  /** A take by git's commands: ls-files, then one script for update-index, write-tree, commit-tree and diff-tree. */
  private async takeWithGit(options: TakeOptions): Promise<Taken> {
    this.lastTake = "git";
    // Git's own lock files matter only to git's commands, which the quick takes do not run.
    await this.clearStaleLocks();
    const { gone, tracked, added, skipped } = await this.stage();
    const staging = path.join(this.gitDir, "dyno-staging");
    await Promise.all([
      writeFile(path.join(staging, "gone"), nulList(gone)),
      writeFile(path.join(staging, "tracked"), nulList(tracked)),
      writeFile(path.join(staging, "added"), nulList(added)),
      writeFile(path.join(staging, "message"), options.message),
    ]);
    const code = await this.shell.run(
      [
        "/bin/sh",
        path.join(staging, "take.sh"),
        options.parent?.commit ?? "",
        options.parent?.tree ?? "",
        options.mode,
        options.date ? gitDate(options.date) : "",
      ]
        .map(shellQuote)
        .join(" ") + ` > ${shellQuote(path.join(staging, "out"))} 2> ${shellQuote(path.join(staging, "err"))}`,
    );
    await this.failed(code, "git (stage, tree, commit)");
    const stdout = await readFile(path.join(staging, "out"));
    const firstBreak = stdout.indexOf(10);
    const tree = stdout.subarray(0, firstBreak).toString().trim();
    const rest = stdout.subarray(firstBreak + 1);
    if (rest.length === 0) return { tree, commit: null, changes: null, skipped };
    const secondBreak = rest.indexOf(10);
    const commit = rest.subarray(0, secondBreak).toString().trim();
    await this.setHead(commit);
    const { changes, raw } = parseChangesWithObjects(rest.subarray(secondBreak + 1));
    await this.followTake(options.parent?.tree ?? null, tree, raw);
    return { tree, commit, changes, skipped };
  }

  /**
   * Keeps the model at the tree a full take just wrote, by applying its changes (diff-tree's raw records) to the
   * parent's, and checking the result hashes to git's own tree; otherwise it is dropped (loaded again when needed).
   */
  private async followTake(parentTree: string | null, tree: string, raw: RawChange[]): Promise<void> {
    const model = this.model;
    this.model = null;
    if (!model || parentTree === null || model.sha !== parentTree) return;
    for (const change of raw) {
      if (change.status === "deleted") model.remove(change.path);
      else if (!model.set(change.path, { mode: change.mode, sha: change.sha })) return;
    }
    if ((await model.hash()) === tree) this.model = model;
  }

  /** The model of `tree`: the one kept, else read from git (one ls-tree, once per process and history). */
  private async modelOf(tree: string): Promise<TreeModel> {
    if (this.model?.sha === tree) return this.model;
    // In the history's shell: a fork of this process (the app's, hundreds of MB) costs more than the listing.
    const staging = path.join(this.gitDir, "dyno-staging");
    const listing = path.join(staging, "tree");
    await this.failed(
      await this.shell.run(
        `git ls-tree -r -t -z --full-tree ${shellQuote(tree)} > ${shellQuote(listing)} 2> ${shellQuote(path.join(staging, "err"))}`,
      ),
      "git ls-tree",
    );
    this.model = TreeModel.fromListing(tree, await readFile(listing));
    return this.model;
  }

  /**
   * A take when the caller knows which files can have changed since `parent` (a write_file step): only they are
   * read, hashed and written, in this process, with no git command (objects.ts). Returns null, having changed
   * nothing that matters, for whatever a full take handles better: a file it would skip or not store as is (a
   * symlink, over the size cap, under a nested repository, a name git treats specially), a file where the tree
   * has a folder, or a diff too large to count here.
   */
  private async takeKnownFiles(
    files: string[],
    options: Omit<TakeOptions, "parent"> & { parent: { commit: string; tree: string } },
    /** Files known gone (a folder stands where each was). */
    gone: string[] = [],
  ): Promise<Taken | null> {
    const found: FoundFile[] = gone.map((file) => ({ path: file, entry: null }));
    const folders = new Map<string, "real" | "gone" | "unsure">();
    for (const file of [...new Set(files)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
      const storable = storablePath(file);
      if (storable === "excluded") continue;
      const on = storable === "unsure" ? "unsure" : this.foldersOn(file, folders);
      if (on === "unsure") return null;
      const info = on === "gone" ? undefined : lstatSync(path.join(this.workTree, file), { throwIfNoEntry: false });
      if (!info) {
        found.push({ path: file, entry: null });
        continue;
      }
      // A hard link: a write through one name changes the other, which no event (nor the caller) names.
      if (!info.isFile() || info.size > this.maxFileBytes || info.nlink > 1) return null;
      // A small file read at once (as objects.ts writes small objects), a larger one through the thread pool.
      const content =
        info.size <= SYNC_WRITE_BYTES
          ? readFileSync(path.join(this.workTree, file))
          : await readFile(path.join(this.workTree, file));
      const sha = await writeObject(this.gitDir, "blob", content);
      found.push({ path: file, entry: { mode: info.mode & 0o100 ? "100755" : "100644", sha }, content });
    }
    return this.commitChanges(await this.modelOf(options.parent.tree), found, options);
  }

  /**
   * A take from the workspace's feed (workspace-watch.ts): only the paths that changed since the parent's take are
   * read, as a take of known files; a folder among them is read whole, and so are the parent's files under it.
   * Null, having changed nothing that matters, where a take of known files would be, for a nested repository, or
   * for over MAX_SCANNED_CHANGES files.
   */
  private async takeChangedPaths(
    paths: Set<string>,
    options: Omit<TakeOptions, "parent"> & { parent: { commit: string; tree: string } },
  ): Promise<Taken | null> {
    const model = await this.modelOf(options.parent.tree);
    const files = new Set<string>();
    const gone: string[] = [];
    for (const changed of paths) {
      if (changed === ".git") continue; // the workspace's own repository is never history's
      for (const file of model.filesUnder(changed)) files.add(file);
      const info = lstatOrNone(path.join(this.workTree, changed));
      if (!info?.isDirectory()) files.add(changed);
      else {
        if (model.get(changed)) gone.push(changed);
        if (!isExcludedFolder(path.posix.basename(changed))) if (!this.filesIn(changed, files)) return null;
      }
      if (files.size > MAX_SCANNED_CHANGES) return null;
    }
    const taken = await this.takeKnownFiles([...files], options, gone);
    if (taken) this.lastTake = "feed";
    return taken;
  }

  /** Adds the files under `folder` to `into`; false for a nested repository or too many files (a full take's). */
  private filesIn(folder: string, into: Set<string>): boolean {
    const pending = [folder];
    while (pending.length > 0) {
      const next = pending.pop()!;
      let entries;
      try {
        entries = readdirSync(path.join(this.workTree, next), { withFileTypes: true });
      } catch {
        continue; // gone meanwhile: its own event comes
      }
      for (const entry of entries) {
        if (entry.name === ".git") return false;
        const file = `${next}/${entry.name}`;
        if (!entry.isDirectory()) into.add(file);
        else if (!isExcludedFolder(entry.name)) pending.push(file);
      }
      if (into.size > MAX_SCANNED_CHANGES) return false;
    }
    return true;
  }

  /**
   * A take from a walk of the workspace in this process (workspace-scan.ts), for a step whose changed files are not
   * known (a command, a run's start and end): only files whose stat data changed are read. Null, having changed
   * nothing that matters, when the walk leaves the take to git (a symlink, a nested repository, a file over the
   * cap…), or the change is too large to count here.
   */
  private async takeScanned(
    options: Omit<TakeOptions, "parent"> & { parent: { commit: string; tree: string } },
  ): Promise<Taken | null> {
    const model = await this.modelOf(options.parent.tree);
    const inTree = model.files();
    if (inTree.size > MAX_WALKED_FILES) return null;
    const scan = await this.scanner.scan();
    if (scan.unsure !== undefined) return null;
    const found: FoundFile[] = [];
    for (const file of inTree.keys()) if (!scan.files.has(file)) found.push({ path: file, entry: null });
    for (const [file, entry] of scan.files) {
      const before = inTree.get(file);
      if (before?.sha !== entry.sha || before.mode !== entry.mode) found.push({ path: file, entry });
    }
    if (found.length > MAX_SCANNED_CHANGES) return null;
    const taken = await this.commitChanges(model, found, options);
    if (taken) this.lastTake = "walk";
    return taken;
  }

  /** Applies the files found changed to `model` (the parent's tree) and commits it as `options` say. */
  private async commitChanges(
    model: TreeModel,
    found: FoundFile[],
    options: Omit<TakeOptions, "parent"> & { parent: { commit: string; tree: string } },
  ): Promise<Taken | null> {
    // From here the model may be part-changed: a take that gives up drops it (it is loaded again when needed).
    const giveUp = () => {
      this.model = null;
      return null;
    };
    const changed: FileChange[] = [];
    // Deletions first: a file may take the place of a folder whose files went.
    for (const { path: file, entry } of found) {
      const before = entry ? undefined : model.get(file);
      if (!before) continue;
      const lines = lineCounts(await this.blob(before.sha), null);
      if (!lines) return giveUp();
      model.remove(file);
      changed.push({ path: file, status: "deleted", ...lines });
    }
    for (const { path: file, entry, content } of found) {
      if (!entry) continue;
      const before = model.get(file);
      if (before?.sha === entry.sha && before.mode === entry.mode) continue;
      const lines = lineCounts(before ? await this.blob(before.sha) : null, content ?? (await this.blob(entry.sha)));
      if (!lines || !model.set(file, entry)) return giveUp();
      changed.push({ path: file, status: before ? "changed" : "added", ...lines });
    }
    // In git's order (by bytes), as diff-tree lists them.
    changed.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    const tree = await model.hash(this.gitDir);
    if (options.mode === "changed" && tree === options.parent.tree)
      return { tree, commit: null, changes: null, skipped: [] };
    const date = gitDate(options.date ?? new Date());
    const commit = await writeObject(
      this.gitDir,
      "commit",
      Buffer.from(
        `tree ${tree}\nparent ${options.parent.commit}\nauthor ${GIT_IDENTITY} ${date}\ncommitter ${GIT_IDENTITY} ${date}\n\n${options.message}`,
      ),
    );
    await this.setHead(commit);
    const count = (status: FileChange["status"]) => changed.filter((f) => f.status === status).length;
    return {
      tree,
      commit,
      changes: { added: count("added"), changed: count("changed"), deleted: count("deleted"), files: changed },
      skipped: [],
    };
  }

  /**
   * What the folders on the way to `file` are: "real" folders (no symlink, none a repository of its own), or one
   * is "gone" (missing, or a file now: so is `file`, a deletion), or "unsure" (a symlink or a nested repository,
   * left to a full take). `seen` keeps each folder's answer for the take's other files.
   */
  private foldersOn(file: string, seen: Map<string, "real" | "gone" | "unsure">): "real" | "gone" | "unsure" {
    const parts = file.split("/");
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join("/");
      let verdict = seen.get(folder);
      if (!verdict) {
        const info = lstatOrNone(path.join(this.workTree, folder));
        verdict =
          !info || info.isFile()
            ? "gone"
            : !info.isDirectory() || lstatOrNone(path.join(this.workTree, folder, ".git"))
              ? "unsure"
              : "real";
        seen.set(folder, verdict);
      }
      if (verdict !== "real") return verdict;
    }
    return "real";
  }

  /** A blob's bytes: read here when loose, else by git (a packed one). */
  private async blob(sha: string): Promise<Buffer> {
    const loose = await readLooseObject(this.gitDir, sha);
    if (loose) return loose.body;
    return (await git(["cat-file", "blob", sha], this.opts())).stdout;
  }

  /** Which paths to drop, refresh and add so the index matches the workspace; what is left out, and why. */
  private async stage(): Promise<{ gone: string[]; tracked: string[]; added: string[]; skipped: SkippedFile[] }> {
    const staging = path.join(this.gitDir, "dyno-staging");
    const code = await this.shell.run(
      ["git", "ls-files", "-z", "-t", "--others", "--modified", "--deleted"]
        .concat(`--exclude-from=${path.join(this.gitDir, "info", "dyno-exclude")}`)
        .map(shellQuote)
        .join(" ") + ` > ${shellQuote(path.join(staging, "list"))} 2> ${shellQuote(path.join(staging, "err"))}`,
    );
    await this.failed(code, "git ls-files");
    const listed = { stdout: await readFile(path.join(staging, "list")) };
    const trackedSet = new Set<string>();
    const others = new Set<string>();
    for (const field of nulFields(listed.stdout)) {
      const tag = field[0];
      const file = field.slice(2);
      if (tag === "?") others.add(file);
      else trackedSet.add(file);
    }
    const skipped: SkippedFile[] = [];
    const skip = (file: string, reason: string) => {
      if (skipped.length < 50) skipped.push({ path: file, reason });
    };
    const gone: string[] = [];
    const realFolders = new Map<string, Promise<boolean>>();
    // True when every folder on the way to `file` is a real folder, not a symlink: lstat must never look through one.
    const reachable = async (file: string): Promise<boolean> => {
      const parent = path.posix.dirname(file);
      if (parent === ".") return true;
      let known = realFolders.get(parent);
      if (!known) {
        known = (async () =>
          (await reachable(parent)) &&
          !!(await lstat(path.join(this.workTree, parent)).catch(() => null))?.isDirectory())();
        realFolders.set(parent, known);
      }
      return known;
    };
    const checked = async (file: string, isTracked: boolean): Promise<boolean> => {
      if (file.includes("\uFFFD")) {
        skip(file, "its name is not valid UTF-8");
        return false;
      }
      if (file.endsWith("/")) {
        skip(file, "a Git repository of its own (it has a .git folder): not kept in history");
        return false;
      }
      if (!(await reachable(file))) {
        // Its folder is now a file or a symlink: the entry goes (update-index refuses to look beyond a link).
        if (isTracked) gone.push(file);
        return false;
      }
      const info = await lstat(path.join(this.workTree, file)).catch(() => null);
      if (!info) return isTracked; // deleted: update-index --remove drops it
      if (info.isSymbolicLink() || info.isDirectory()) return true;
      if (!info.isFile()) {
        skip(file, "not a regular file");
        if (isTracked) gone.push(file);
        return false;
      }
      if (info.size > this.maxFileBytes) {
        skip(file, `${info.size} bytes, over the ${this.maxFileBytes}-byte limit for a file in history`);
        if (isTracked) gone.push(file);
        return false;
      }
      return true;
    };
    const tracked = await filterAsync([...trackedSet], (f) => checked(f, true));
    const added = await filterAsync(
      [...others].filter((f) => !trackedSet.has(f)),
      (f) => checked(f, false),
    );
    return { gone, tracked, added, skipped };
  }

  /** A commit of `tree` on top of `parent` (the versions branch moves to it). */
  async commit(tree: string, parent: string | null, message: string): Promise<string> {
    const sha = await gitText(
      ["commit-tree", tree, ...(parent ? ["-p", parent] : []), "-F", "-"],
      this.opts({ input: message }),
    );
    await this.setHead(sha);
    return sha;
  }

  /**
   * Points the versions branch at `sha`, so every version stays reachable.
   * A loose ref written without a process: over the old one in place (one
   * write of its 41 bytes, which a killed process cannot leave half done,
   * and no new file, which costs a few ms on a slow disk), else written aside
   * and renamed into place.
   */
  async setHead(sha: string): Promise<void> {
    const ref = path.join(this.gitDir, VERSIONS_REF);
    const line = `${sha}\n`;
    // Rewritten in place when it holds a sha already (a ref is one line; git reads it whole), with synchronous
    // calls: tens of microseconds, where four trips through the thread pool cost a step a quarter of a millisecond.
    if (rewriteSameLength(ref, line)) return;
    await mkdir(path.dirname(ref), { recursive: true });
    await writeFile(`${ref}.dyno-tmp`, `${sha}\n`);
    await rename(`${ref}.dyno-tmp`, ref);
  }

  /** Points another ref of the history (not the versions branch) at `sha`. */
  async setRef(ref: string, sha: string): Promise<void> {
    await git(["update-ref", ref, sha], this.opts());
  }

  async deleteRef(ref: string): Promise<void> {
    await git(["update-ref", "-d", ref], this.opts());
  }

  async treeOf(commit: string): Promise<string> {
    return gitText(["rev-parse", `${commit}^{tree}`], this.opts());
  }

  /** What changed from `from` (a commit or tree; null: nothing) to `to`, with line counts. */
  async changes(from: string | null, to: string): Promise<ChangeSummary> {
    const { stdout } = await git(
      [
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        "--no-ext-diff",
        "--no-textconv",
        "--raw",
        "--numstat",
        from ?? EMPTY_TREE,
        to,
      ],
      this.opts(),
    );
    return parseChanges(stdout);
  }

  /** The unified diff of one file between two commits, or null when it is over `maxBytes`. */
  async fileDiff(from: string | null, to: string, file: string, maxBytes = 512 * 1024): Promise<string | null> {
    try {
      const { stdout } = await git(
        [
          "diff",
          "--no-color",
          "--no-ext-diff",
          "--no-textconv",
          "--no-renames",
          "-U3",
          from ?? EMPTY_TREE,
          to,
          "--",
          file,
        ],
        this.opts({ maxOutputBytes: maxBytes }),
      );
      return stdout.toString("utf8");
    } catch (error) {
      if (error instanceof Error && /output over/.test(error.message)) return null;
      throw error;
    }
  }

  /** Every file of a version, sorted, with its size. */
  async files(commit: string): Promise<TreeEntry[]> {
    const { stdout } = await git(["ls-tree", "-r", "-z", "--long", "--full-tree", commit], this.opts());
    return nulFields(stdout).map((line) => {
      const tab = line.indexOf("\t");
      const [mode, , , size] = line.slice(0, tab).split(/\s+/);
      return { path: line.slice(tab + 1), mode: mode!, bytes: Number(size) || 0 };
    });
  }

  /** One file's bytes at a version, or null when it is not there or over maxBytes. */
  async readFile(commit: string, file: string, maxBytes = 1024 * 1024): Promise<Buffer | null> {
    const spec = `${commit}:${file}`;
    const size = await git(["cat-file", "-s", spec], this.opts({ okCodes: [128] }));
    if (size.exitCode !== 0) return null;
    if (Number(size.stdout.toString().trim()) > maxBytes) return null;
    return (await git(["cat-file", "blob", spec], this.opts())).stdout;
  }

  /**
   * Makes the workspace exactly `commit`'s files: files it does not have are
   * removed, the rest written. Excluded folders (node_modules, build output)
   * and skipped files are not in the index, so they are left alone.
   */
  async restore(commit: string): Promise<void> {
    // The index must list every file now in the workspace, or git would leave the ones it does not know about.
    await this.snapshot();
    const staging = path.join(this.gitDir, "dyno-staging");
    const code = await this.shell.run(
      `git read-tree -u --reset ${shellQuote(`${commit}^{tree}`)} > /dev/null 2> ${shellQuote(path.join(staging, "err"))}`,
      { timeoutMs: 300_000 },
    );
    await this.failed(code, "git read-tree");
  }

  /** A zip of one version's files. */
  async zip(commit: string): Promise<Buffer> {
    return (await git(["archive", "--format=zip", commit], this.opts({ maxOutputBytes: 512 * 1024 * 1024 }))).stdout;
  }

  /**
   * Packs the loose objects the takes wrote (each changed file is one, zlib'd on its own) into a pack, merging
   * packs geometrically so their number stays logarithmic; unreachable objects are left to git's own expiry.
   * record.ts calls it every PACK_EVERY_VERSIONS versions.
   */
  async pack(): Promise<void> {
    await this.init();
    const err = shellQuote(path.join(this.gitDir, "dyno-staging", "err"));
    await this.failed(
      await this.shell.run(`git repack -d -q --geometric=2 > /dev/null 2> ${err}`, { timeoutMs: 10 * 60_000 }),
      "git repack",
    );
  }

  /**
   * The oldest version's commit when older ones were pruned, else null. Git's shallow file is the one record of
   * it: git itself then treats that commit as having no parents, and everything reads the bound from here.
   */
  async oldestKept(): Promise<string | null> {
    const text = await readFile(path.join(this.gitDir, "shallow"), "utf8").catch(() => "");
    return /^[0-9a-f]{40}/.exec(text)?.[0] ?? null;
  }

  /**
   * Drops every version older than `oldestKept` (a commit on the versions branch): it becomes the history's
   * shallow boundary (written aside and renamed, so a crash leaves the old boundary or the new one), then a full
   * repack keeps only the objects the kept versions, the index and the refs reach, and `git prune` removes the
   * loose rest (repackAll). The caller keeps the project's takes out (lock.ts), so none is writing objects.
   */
  async pruneBefore(oldestKept: string): Promise<void> {
    await this.init();
    if (!/^[0-9a-f]{40}$/.test(oldestKept)) throw new Error(`not a commit: ${oldestKept}`);
    const shallow = path.join(this.gitDir, "shallow");
    await writeFile(`${shallow}.dyno-tmp`, `${oldestKept}\n`);
    await rename(`${shallow}.dyno-tmp`, shallow);
    await this.repackAll();
  }

  /**
   * One pack of every object the versions (from the shallow boundary on), the index and the refs reach; the rest,
   * packed or loose, is deleted. Only with takes kept out (lock.ts): an object a take is writing is reached by nothing.
   * The walk's and the model's memory go too: a sha they remember may name an object that was deleted.
   */
  async repackAll(): Promise<void> {
    await this.init();
    this.model = null;
    this.scanner.forget();
    await this.removeStrayTemporaries();
    const err = shellQuote(path.join(this.gitDir, "dyno-staging", "err"));
    await this.failed(
      // The index first becomes the newest version's tree: quick takes leave it at the last full take's files,
      // and what it names is kept.
      await this.shell.run(
        `git read-tree ${VERSIONS_REF} 2> ${err} && git repack -a -d -q > /dev/null 2> ${err} && git prune --expire=now 2> ${err}`,
        { timeoutMs: 30 * 60_000 },
      ),
      "git repack -a",
    );
  }

  /**
   * Deletes what a killed writer left half made: an object written aside (objects.ts), a pack git was writing.
   * Only with takes kept out (lock.ts), when no writer of this repository is running.
   */
  private async removeStrayTemporaries(): Promise<void> {
    const objects = path.join(this.gitDir, "objects");
    const stray = async (folder: string, pattern: RegExp) =>
      Promise.all(
        (await readdir(folder).catch(() => []))
          .filter((name) => pattern.test(name))
          .map((name) => rm(path.join(folder, name), { force: true })),
      );
    await Promise.all([stray(objects, /^dyno-tmp-/), stray(path.join(objects, "pack"), /^(\.tmp-|tmp_)/)]);
  }

  /** Bytes the repository takes on disk. */
  async sizeBytes(): Promise<number> {
    return folderBytes(this.gitDir);
  }

  async destroy(): Promise<void> {
    this.ready = undefined;
    this.watch?.stop();
    this.shell.close();
    await rm(this.gitDir, { recursive: true, force: true });
  }
}

async function filterAsync<T>(items: T[], keep: (item: T) => Promise<boolean>): Promise<T[]> {
  const kept = await Promise.all(items.map(keep));
  return items.filter((_, index) => kept[index]);
}

function nulList(paths: string[]): string {
  return paths.length ? `${paths.join("\0")}\0` : "";
}

export interface TakeOptions {
  parent: { commit: string; tree: string } | null;
  message: string;
  mode: "commit" | "changed" | "tree";
  date?: Date;
  /** Only these files (workspace paths) can have changed since `parent`: a take of them alone may do. */
  files?: string[];
  /**
   * Read every file (a walk, or git's commands), not only the paths the feed names: a run's end, so a change no
   * event told of (a write through a shared memory map, which inotify does not report) is in the run's last version.
   */
  exact?: boolean;
}

/** A file a quick take found changed: its new entry (null: deleted) and, when at hand, its bytes. */
interface FoundFile {
  path: string;
  entry: { mode: string; sha: string } | null;
  content?: Buffer;
}

/**
 * Over this many files in the parent version, a command's take is git's: an lstat costs 6-15 µs from Node on this
 * disk, and past about 1,400 files a walk costs more than git's five commands (bench:versions).
 */
const MAX_WALKED_FILES = 1000;

/** Over this many changed files a walk's take leaves the counting to git (one diff-tree, not a read per file). */
const MAX_SCANNED_CHANGES = 200;

/** Who the history's commits are by (git.ts sets the same for git's own). */
const GIT_IDENTITY = "Dyno <dyno@localhost>";

/**
 * Whether a take of known files may store `file` as it is: "excluded" under a folder history never keeps,
 * "unsure" for anything git itself checks or skips (left to a full take), else "yes".
 */
function storablePath(file: string): "yes" | "excluded" | "unsure" {
  if (!file || file.startsWith("/") || file.includes("\0") || /\p{Cs}/u.test(file) || file.includes("\uFFFD"))
    return "unsure";
  const parts = file.split("/");
  for (const part of parts) {
    if (part === "" || part === "." || part === "..") return "unsure";
    // .git in any spelling git guards against (case, characters HFS ignores, 8.3 names, trailing dots and
    // spaces), and backslashes and colons (NTFS).
    const bare = part.replace(/[^\x20-\x7e]/g, "").toLowerCase();
    if (bare === ".git" || /^git~/.test(bare) || /[.\s]$/.test(part) || /[\\:]/.test(part)) return "unsure";
  }
  if (parts.slice(0, -1).some(isExcludedFolder)) return "excluded";
  return "yes";
}

/** Bytes git reads to tell a binary file: a NUL among the first 8,000 makes it binary. */
const BINARY_PROBE_BYTES = 8000;
/** Over this many edits a line diff costs more here than git's own (then a full take counts it). */
const MAX_LINE_EDITS = 5000;

/**
 * `diff --numstat`'s counts between two versions of a file (null: absent): null counts for a binary file, as
 * git gives; undefined when the diff is too large to count here.
 */
function lineCounts(
  before: Buffer | null,
  after: Buffer | null,
): { linesAdded: number | null; linesDeleted: number | null } | undefined {
  const binary = (b: Buffer | null) => !!b && b.subarray(0, BINARY_PROBE_BYTES).includes(0);
  if (binary(before) || binary(after)) return { linesAdded: null, linesDeleted: null };
  // latin1: one character per byte, so bytes that are not UTF-8 compare as themselves.
  const text = (b: Buffer | null) => (b ? b.toString("latin1") : "");
  if (!before || !after) {
    const lines = (b: Buffer | null) =>
      !b || b.length === 0 ? 0 : text(b).split("\n").length - (b.at(-1) === 10 ? 1 : 0);
    return { linesAdded: lines(after), linesDeleted: lines(before) };
  }
  const parts = diffLines(text(before), text(after), { maxEditLength: MAX_LINE_EDITS });
  if (!parts) return undefined;
  let linesAdded = 0;
  let linesDeleted = 0;
  for (const part of parts) {
    if (part.added) linesAdded += part.count ?? 0;
    else if (part.removed) linesDeleted += part.count ?? 0;
  }
  return { linesAdded, linesDeleted };
}

interface RawChange {
  path: string;
  status: FileChange["status"];
  /** The new mode and object (for a deletion, the old). */
  mode: string;
  sha: string;
}

function parseChanges(stdout: Buffer): ChangeSummary {
  return parseChangesWithObjects(stdout).changes;
}

/** `diff-tree -z --raw --numstat` output: raw records (":mode mode sha sha S", path), then "added\tdeleted\tpath". */
function parseChangesWithObjects(stdout: Buffer): { changes: ChangeSummary; raw: RawChange[] } {
  const fields = nulFields(stdout);
  const byPath = new Map<string, FileChange>();
  const raw: RawChange[] = [];
  let i = 0;
  while (i < fields.length && fields[i]!.startsWith(":")) {
    const [, newMode, oldSha, newSha, letter] = fields[i]!.slice(1).split(" ") as [
      string,
      string,
      string,
      string,
      string,
    ];
    const file = fields[i + 1]!;
    const status = letter === "A" ? "added" : letter === "D" ? "deleted" : "changed";
    byPath.set(file, { path: file, status, linesAdded: null, linesDeleted: null });
    raw.push({ path: file, status, mode: newMode, sha: status === "deleted" ? oldSha : newSha });
    i += 2;
  }
  for (; i < fields.length; i++) {
    const match = /^(-|\d+)\t(-|\d+)\t([\s\S]*)$/.exec(fields[i]!);
    const entry = match && byPath.get(match[3]!);
    if (!match || !entry) continue;
    entry.linesAdded = match[1] === "-" ? null : Number(match[1]);
    entry.linesDeleted = match[2] === "-" ? null : Number(match[2]);
  }
  const files = [...byPath.values()];
  return {
    changes: {
      added: files.filter((f) => f.status === "added").length,
      changed: files.filter((f) => f.status === "changed").length,
      deleted: files.filter((f) => f.status === "deleted").length,
      files,
    },
    raw,
  };
}

/** Stages, writes the tree and, as asked, commits and diffs ($1 parent commit, $2 its tree, $3 mode, $4 date). */
const TAKE_SCRIPT = `set -e
d="$GIT_DIR/dyno-staging"
if [ -n "$4" ]; then GIT_AUTHOR_DATE="$4"; GIT_COMMITTER_DATE="$4"; export GIT_AUTHOR_DATE GIT_COMMITTER_DATE; fi
if [ -s "$d/gone" ]; then git update-index -z --force-remove --stdin < "$d/gone"; fi
if [ -s "$d/tracked" ]; then git update-index -z --remove --stdin < "$d/tracked"; fi
if [ -s "$d/added" ]; then git update-index -z --add --stdin < "$d/added"; fi
tree=$(git write-tree)
printf '%s\\n' "$tree"
if [ "$3" = tree ]; then exit 0; fi
if [ "$3" = changed ] && [ "$tree" = "$2" ]; then exit 0; fi
if [ -n "$1" ]; then commit=$(git commit-tree "$tree" -p "$1" < "$d/message"); else commit=$(git commit-tree "$tree" < "$d/message"); fi
printf '%s\\n' "$commit"
git diff-tree -r -z --no-renames --no-ext-diff --no-textconv --raw --numstat "\${1:-${EMPTY_TREE}}" "$commit"
`;

function gitDate(date: Date): string {
  return `${Math.floor(date.getTime() / 1000)} +0000`;
}

async function folderBytes(folder: string): Promise<number> {
  let total = 0;
  const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) total += await folderBytes(full);
    else if (entry.isFile()) total += (await lstat(full).catch(() => null))?.size ?? 0;
  }
  return total;
}

/** Writes `line` over the file when it has exactly that length; false when it does not, or does not exist. */
function rewriteSameLength(file: string, line: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, "r+");
  } catch {
    return false;
  }
  try {
    if (fstatSync(fd).size !== line.length) return false;
    writeSync(fd, line, 0);
    return true;
  } finally {
    closeSync(fd);
  }
}
