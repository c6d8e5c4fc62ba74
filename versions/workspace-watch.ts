/**
 * A feed of the workspace's changes, for the versions of steps whose changed files are not known (a command,
 * start_app): with it, a take reads only the paths that changed since the last one, whatever the workspace's
 * size, instead of walking every file or running git's commands (decision 026, stop 24 addendum).
 *
 * One watch per folder (Node's fs.watch; libuv serves them all from one inotify queue per process), none in the
 * folders history never keeps (node_modules, build output, .git). It says only which paths may have changed; the
 * take reads them. When it cannot be sure it says so ("lost"), and the take walks or runs git instead:
 * - too many events read in one go (the kernel's queue may have overflowed, and libuv drops that notice: an
 *   overflow means a full queue, 16,384 events here, which libuv reads in one pass of its poll phase), or more
 *   changed paths than a take would read one by one;
 * - a watch that fails (the system's watch limit), or too many folders to watch;
 * - the workspace folder itself replaced (its own watch would see nothing more).
 * A folder that appears is watched at once and also marked changed as a whole, so files made in it before its
 * watch began are read by the take; a folder that goes or moves loses its watches.
 */
import { lstatSync, readdirSync, watch, type FSWatcher, type Stats } from "node:fs";
import path from "node:path";

/** The entry at `absolute`, or undefined when there is none (gone, or a file stands where a folder was). */
export function lstatOrNone(absolute: string): Stats | undefined {
  try {
    return lstatSync(absolute);
  } catch {
    return undefined;
  }
}

export type Drained = { paths: Set<string>; lost?: undefined } | { lost: string };

interface Watched {
  watcher: FSWatcher;
  ino: number;
}

export interface WatchLimits {
  /**
   * Events read in one pass of the event loop beyond which the feed is lost (well under the kernel's
   * max_queued_events), and changed paths between two drains beyond which it is lost too.
   */
  maxEvents: number;
  /** Folders beyond which the workspace is not watched. */
  maxFolders: number;
  /** A watch no take drained for this long is closed (its watches are a kernel resource shared by the machine). */
  idleMs: number;
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = { maxEvents: 2000, maxFolders: 5000, idleMs: 10 * 60_000 };

/** A start that failed (too many folders, the system's limit) is not tried again for this long. */
const RETRY_AFTER_MS = 5 * 60_000;

export class WorkspaceWatch {
  private watched = new Map<string, Watched>();
  private dirty = new Set<string>();
  /** Events read since the event loop last got past its poll phase (reset by an immediate). */
  private burst = 0;
  private burstEnds: NodeJS.Immediate | undefined;
  private lostReason: string | null = null;
  private failedAt = Number.NEGATIVE_INFINITY;
  private idle: NodeJS.Timeout | undefined;

  /**
   * The tree the workspace matches everywhere but at the paths marked since the last drain; null when none is known
   * (the next take is a full one, which sets it). Set by the takes (store.ts).
   */
  baseline: string | null = null;

  constructor(
    private readonly workTree: string,
    private readonly excludedFolders: readonly string[],
    private readonly limits: WatchLimits = DEFAULT_WATCH_LIMITS,
  ) {}

  get running(): boolean {
    return this.watched.size > 0 && this.lostReason === null;
  }

  /**
   * Starts watching (a no-op when running). Whatever changed before is not known: baseline is null until a full
   * take sets it. False when the workspace cannot be watched now.
   */
  start(): boolean {
    if (this.running) return true;
    if (Date.now() - this.failedAt < RETRY_AFTER_MS) return false;
    this.stop();
    try {
      this.watchTree("");
    } catch {
      this.stop();
      this.failedAt = Date.now();
      return false;
    }
    return this.running;
  }

  /** Closes every watch and forgets what it saw. */
  stop(): void {
    for (const { watcher } of this.watched.values()) watcher.close();
    this.watched.clear();
    this.dirty.clear();
    this.lostReason = null;
    this.baseline = null;
    clearTimeout(this.idle);
    this.idle = undefined;
  }

  /** Marks paths changed by this process's own writes (a take of known files), whether or not their events came. */
  mark(files: Iterable<string>): void {
    for (const file of files) this.dirty.add(file);
  }

  /**
   * The paths that may have changed since the last drain, and a fresh set for the changes from now on. Changes
   * made before this call are all in it: their events are in the kernel's queue when the write returns, and one
   * pass of the event loop's poll phase reads the whole queue.
   */
  async drain(): Promise<Drained> {
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    if (!this.running) return { lost: this.lostReason ?? "not watching" };
    const root = lstatOrNone(this.workTree);
    if (!root?.isDirectory() || root.ino !== this.watched.get("")?.ino) {
      this.lose("the workspace folder was replaced");
      return { lost: "the workspace folder was replaced" };
    }
    const paths = this.dirty;
    this.dirty = new Set();
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), this.limits.idleMs);
    this.idle.unref();
    return { paths };
  }

  private lose(reason: string): void {
    for (const { watcher } of this.watched.values()) watcher.close();
    this.watched.clear();
    this.dirty.clear();
    this.baseline = null;
    this.lostReason = reason;
  }

  /** Watches `folder` and every folder under it history keeps (the watch first, then the listing: nothing slips). */
  private watchTree(folder: string): void {
    const pending = [folder];
    while (pending.length > 0) {
      const next = pending.pop()!;
      const absolute = next ? path.join(this.workTree, next) : this.workTree;
      const info = lstatOrNone(absolute);
      if (!info?.isDirectory()) continue;
      if (this.watched.size >= this.limits.maxFolders) throw new Error(`over ${this.limits.maxFolders} folders`);
      this.watched.get(next)?.watcher.close();
      const watcher = watch(absolute, { persistent: false }, (event, name) => this.onEvent(next, event, name));
      watcher.on("error", () => this.lose(`the watch of ${next || "the workspace"} failed`));
      this.watched.set(next, { watcher, ino: info.ino });
      let entries;
      try {
        entries = readdirSync(absolute, { withFileTypes: true });
      } catch {
        continue; // gone since the lstat: its parent's event says so
      }
      for (const entry of entries)
        if (entry.isDirectory() && !this.excludedFolders.includes(entry.name))
          pending.push(next ? `${next}/${entry.name}` : entry.name);
    }
  }

  /** Closes the watches of `folder` and every folder under it. */
  private unwatchTree(folder: string): void {
    for (const [watchedFolder, { watcher }] of this.watched)
      if (watchedFolder === folder || watchedFolder.startsWith(`${folder}/`)) {
        watcher.close();
        this.watched.delete(watchedFolder);
      }
  }

  private onEvent(folder: string, event: string, name: string | Buffer | null): void {
    if (!this.running) return;
    this.burstEnds ??= setImmediate(() => {
      this.burst = 0;
      this.burstEnds = undefined;
    });
    if (++this.burst > this.limits.maxEvents || this.dirty.size >= this.limits.maxEvents)
      return this.lose(`over ${this.limits.maxEvents} changes at once`);
    if (name === null) {
      this.dirty.add(folder);
      return;
    }
    const file = folder ? `${folder}/${String(name)}` : String(name);
    this.dirty.add(file);
    // A content or attribute change ("change") leaves the entry what it was; only a "rename" (it appeared, went or
    // moved) can be a folder to watch or to stop watching. An app writing its log costs no lstat per line.
    if (event !== "rename") return;
    const info = lstatOrNone(path.join(this.workTree, file));
    const watched = this.watched.get(file);
    if (watched && (!info?.isDirectory() || info.ino !== watched.ino)) this.unwatchTree(file);
    if (info?.isDirectory() && !this.watched.has(file) && !this.excludedFolders.includes(String(name)))
      try {
        this.watchTree(file);
      } catch {
        this.lose(`over ${this.limits.maxFolders} folders`);
      }
  }
}
