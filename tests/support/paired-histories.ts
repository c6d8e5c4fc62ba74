/**
 * Two histories of one workspace, for checking a quick take (in process) against git's own: `quick` takes as the
 * app does, `reference` with git's commands alone, with the same messages and dates, so the two must agree commit
 * for commit, and on every file's change and line counts.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect, vi } from "vitest";
import { ProjectHistory, type Taken } from "../../versions/store";
import { DEFAULT_WATCH_LIMITS, type WatchLimits } from "../../versions/workspace-watch";

type Parent = { commit: string; tree: string } | null;

export interface TakeBothOptions {
  mode?: "changed" | "commit";
  /** Told to the quick history only (a write_file's files); the reference always takes everything. */
  files?: string[];
  /** Told to the quick history: read every file (a run's end). */
  exact?: boolean;
}

export class PairedHistories {
  private parents: { quick: Parent; reference: Parent } = { quick: null, reference: null };
  private at = Date.UTC(2026, 0, 1);

  private constructor(
    readonly root: string,
    readonly ws: string,
    readonly quick: ProjectHistory,
    readonly reference: ProjectHistory,
  ) {}

  /** `watch`: the quick history's feed of changes (null: none, so a command's take is a walk's). */
  static async create(
    prefix: string,
    { maxFileBytes = 4096, watch = DEFAULT_WATCH_LIMITS }: { maxFileBytes?: number; watch?: WatchLimits | null } = {},
  ): Promise<PairedHistories> {
    const root = await mkdtemp(path.join(os.tmpdir(), prefix));
    const ws = path.join(root, "ws");
    await mkdir(ws);
    return new PairedHistories(
      root,
      ws,
      new ProjectHistory(path.join(root, "quick.git"), ws, maxFileBytes, true, Number.POSITIVE_INFINITY, watch),
      new ProjectHistory(path.join(root, "reference.git"), ws, maxFileBytes, false, Number.POSITIVE_INFINITY, null),
    );
  }

  async put(file: string, content: string | Buffer): Promise<void> {
    await mkdir(path.dirname(path.join(this.ws, file)), { recursive: true });
    await writeFile(path.join(this.ws, file), content);
  }

  /** One version in both histories. */
  async takeBoth({ mode = "changed", files, exact }: TakeBothOptions = {}): Promise<{
    quick: Taken;
    reference: Taken;
  }> {
    const date = new Date((this.at += 1000));
    const message = `version at ${date.toISOString()}\n`;
    const quick = await this.quick.take({ parent: this.parents.quick, message, mode, date, files, exact });
    const reference = await this.reference.take({ parent: this.parents.reference, message, mode, date });
    if (quick.commit) this.parents.quick = { commit: quick.commit, tree: quick.tree };
    if (reference.commit) this.parents.reference = { commit: reference.commit, tree: reference.tree };
    return { quick, reference };
  }

  /** One version in both, which must be the same commit with the same changes (and skipped files). */
  async expectAgreement(options: TakeBothOptions = {}): Promise<Taken> {
    const { quick, reference } = await this.takeBoth(options);
    expect(quick.tree).toBe(reference.tree);
    expect(quick.commit).toBe(reference.commit);
    expect(quick.changes).toEqual(reference.changes);
    // A take of known files names only those it skipped; a full take or a walk, every file it leaves out.
    if (!options.files) expect(quick.skipped).toEqual(reference.skipped);
    return quick;
  }

  async remove(): Promise<void> {
    this.quick.close();
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Counts the git commands a history's shell runs (a quick take runs none). */
export function shellRuns(history: ProjectHistory) {
  const spy = vi.spyOn((history as unknown as { shell: { run(command: string): unknown } }).shell, "run");
  // Loading the tree a take starts from (once per process and history) is a listing, not a take.
  return { count: () => spy.mock.calls.filter(([command]) => !String(command).startsWith("git ls-tree")).length };
}
