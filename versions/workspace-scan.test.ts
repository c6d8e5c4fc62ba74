/**
 * Takes from a walk of the workspace in this process (a command's version, workspace-scan.ts), against git's own:
 * a second history of the same workspace takes every version with git's commands alone, with the same messages
 * and dates, so the two must agree commit for commit, and on every file's change and line counts.
 */
import { execFileSync } from "node:child_process";
import { chmod, rename, rm, symlink, unlink, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PairedHistories, shellRuns } from "../tests/support/paired-histories";
import { EXCLUDED_FOLDERS, type ProjectHistory } from "./store";
import { WorkspaceScanner } from "./workspace-scan";

let pair: PairedHistories;
let ws: string;
let quick: ProjectHistory;

beforeEach(async () => {
  pair = await PairedHistories.create("dyno-scan-", { watch: null });
  ({ ws, quick } = pair);
});

afterEach(async () => {
  await pair.remove();
});

const put = (file: string, content: string | Buffer) => pair.put(file, content);
const expectAgreement = (mode: "changed" | "commit" = "changed") => pair.expectAgreement({ mode });

/** Waits past the walk's margin for a file changed just now. */
const settle = (ms = 250) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a take from a walk of the workspace", () => {
  it("agrees with git's own take, commit for commit, over what commands do to files", async () => {
    await put("index.html", "<h1>start</h1>\n");
    await put("src/app/main.ts", "export const a = 1;\n");
    await expectAgreement();

    const runs = shellRuns(quick);
    const steps: (() => Promise<void>)[] = [
      // Several files at once, as a command does.
      async () => {
        await put("src/app/main.ts", "export const a = 2;\nexport const b = 3;\n");
        await put("src/app/new/deep/file.ts", "one\ntwo\nthree");
        await put("README.md", "");
      },
      async () => {
        await put("bin/run.sh", "#!/bin/sh\necho hi\n");
        await chmod(path.join(ws, "bin/run.sh"), 0o755);
      },
      () => chmod(path.join(ws, "bin/run.sh"), 0o644),
      async () => {
        await put("logo.bin", Buffer.from([0x89, 0x50, 0x00, 0x01, 0x0a, 0xff]));
        await put("latin.txt", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
        await put("crlf.txt", "a\r\nb\r\n");
      },
      async () => {
        await put("name with spaces and ünïcode.txt", "x\n");
        await put("-leading-dash.txt", "dash\n");
        await put("a-b", "sorts between a and a/\n");
        await put("a/b", "in a folder\n");
        await put(".gitignore", "*\n");
      },
      // Build output and dependencies never enter history; a .git folder of the workspace's own neither.
      async () => {
        await put("node_modules/pkg/index.js", "module.exports = 1;\n");
        await put("src/dist/bundle.js", "bundled\n");
        await put(".git/HEAD", "ref: refs/heads/evil\n");
        await put(".git/hooks/post-commit", "rm -rf /\n");
      },
      // A folder becomes a file, a file becomes a folder, a whole tree moves.
      async () => {
        await rm(path.join(ws, "src/app/new"), { recursive: true });
        await put("src/app/new", "now a file\n");
        await unlink(path.join(ws, "a-b"));
        await put("a-b/inside.txt", "now a folder\n");
      },
      () => rename(path.join(ws, "src"), path.join(ws, "lib")),
      async () => {
        await unlink(path.join(ws, "index.html"));
        await unlink(path.join(ws, "README.md"));
      },
      async () => {}, // nothing changed: no version
    ];
    for (const change of steps) {
      await change();
      await expectAgreement();
    }
    // A run's end commits even when nothing changed.
    expect((await expectAgreement("commit")).commit).not.toBeNull();
    expect(runs.count()).toBe(0);
    execFileSync("git", ["fsck", "--strict", "--no-dangling"], { env: { ...process.env, GIT_DIR: quick.gitDir } });
  });

  it("sees a rewrite that keeps the size, in the same tick or with the old mtime put back", async () => {
    await put("same.txt", "aaaa\n");
    await expectAgreement();
    // Rewritten at once: same size, and on a coarse clock maybe the same mtime.
    await put("same.txt", "bbbb\n");
    expect((await expectAgreement()).changes?.changed).toBe(1);
    // Settled in the walk's memory, then rewritten with its old times put back (what `touch -r` or tar does).
    const old = new Date(Date.now() - 60_000);
    await utimes(path.join(ws, "same.txt"), old, old);
    await expectAgreement();
    await settle();
    await expectAgreement(); // read once more now that it settled: remembered from here
    await put("same.txt", "cccc\n");
    await utimes(path.join(ws, "same.txt"), old, old);
    expect((await expectAgreement()).changes?.files).toEqual([
      { path: "same.txt", status: "changed", linesAdded: 1, linesDeleted: 1 },
    ]);
  });

  it("leaves to git what git checks or skips, and is back in step after it", async () => {
    await put("a.txt", "a\n");
    await expectAgreement();
    const runs = shellRuns(quick);
    const cases: [string, () => Promise<void>, () => Promise<void>][] = [
      ["a symlink", () => symlink("a.txt", path.join(ws, "link")), () => unlink(path.join(ws, "link"))],
      ["a file over the cap", () => put("big.txt", "x".repeat(5000)), () => unlink(path.join(ws, "big.txt"))],
      [
        "a nested repository",
        () => put("vendor/lib/.git/HEAD", "ref: refs/heads/main\n"),
        () => rm(path.join(ws, "vendor"), { recursive: true }),
      ],
      [
        "a .git in another case",
        () => put(".GIT/config", "[core]\n"),
        () => rm(path.join(ws, ".GIT"), { recursive: true }),
      ],
      ["a name ending in a dot", () => put("odd.", "x\n"), () => unlink(path.join(ws, "odd."))],
      [
        "a name that is not UTF-8",
        () => writeFile(Buffer.concat([Buffer.from(`${ws}/`), Buffer.from([0x66, 0xff, 0x2e, 0x74])]), "x\n"),
        () => unlink(Buffer.concat([Buffer.from(`${ws}/`), Buffer.from([0x66, 0xff, 0x2e, 0x74])])),
      ],
    ];
    for (const [what, make, undo] of cases) {
      const before = runs.count();
      await make();
      await put("a.txt", `a and ${what}\n`);
      await expectAgreement();
      expect(runs.count(), what).toBeGreaterThan(before);
      await undo();
      await expectAgreement();
      // Gone again: the next command's version is a walk's.
      const back = runs.count();
      await put("a.txt", `a after ${what}\n`);
      await expectAgreement();
      expect(runs.count(), what).toBe(back);
    }
  });

  it("reads again a file changed just before the walk, until it settles, and then only what changed", async () => {
    await quick.init();
    // A margin of a second, not the tick's 20 ms, so a slow machine cannot let the files settle early.
    const scanner = new WorkspaceScanner(ws, quick.gitDir, 4096, EXCLUDED_FOLDERS, () => "yes", 1_000_000_000n);
    await put("fresh.txt", "fresh\n");
    await put("other.txt", "other\n");
    const reads = async () => {
      const scan = await scanner.scan();
      if (scan.unsure !== undefined) throw new Error(scan.unsure);
      return scan.read;
    };
    expect(await reads()).toBe(2);
    // Changed within the margin: its stat data might not change with its next write, so it is not trusted yet.
    expect(await reads()).toBe(2);
    await settle(1100);
    expect(await reads()).toBe(2); // read once more, now remembered
    expect(await reads()).toBe(0);
    await put("other.txt", "changed\n");
    await settle(1100);
    expect(await reads()).toBe(1);
    expect(await reads()).toBe(0);
  });

  it("leaves a workspace of over 1,000 files to git, where a walk costs more", async () => {
    for (let i = 0; i < 1000; i++) await put(`gen/f${i}.txt`, `${i}\n`);
    await expectAgreement();
    const runs = shellRuns(quick);
    await put("gen/f1.txt", "changed\n");
    await expectAgreement();
    expect(runs.count()).toBe(0);
    await put("gen/one-more.txt", "1,001 files\n");
    await expectAgreement();
    await put("gen/f1.txt", "changed again\n");
    await expectAgreement();
    expect(runs.count()).toBeGreaterThan(0);
  });

  it("leaves a change of many files to git's one diff", async () => {
    await put("a.txt", "a\n");
    await expectAgreement();
    const runs = shellRuns(quick);
    for (let i = 0; i < 250; i++) await put(`gen/f${i}.txt`, `${i}\n`);
    expect((await expectAgreement()).changes?.added).toBe(250);
    expect(runs.count()).toBeGreaterThan(0);
  });
});
