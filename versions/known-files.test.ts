/**
 * Takes of known files (a write_file step's version), written in this process (objects.ts), against git's own: a
 * second history of the same workspace takes every version with git's commands alone, with the same messages and
 * dates, so the two must agree commit for commit, and on every file's change and line counts.
 */
import { execFileSync } from "node:child_process";
import { chmod, rm, symlink, unlink } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PairedHistories, shellRuns } from "../tests/support/paired-histories";
import type { ProjectHistory } from "./store";

let pair: PairedHistories;
let ws: string;
let fast: ProjectHistory;

beforeEach(async () => {
  pair = await PairedHistories.create("dyno-known-files-");
  ({ ws, quick: fast } = pair);
});

afterEach(async () => {
  await pair.remove();
});

const put = (file: string, content: string | Buffer) => pair.put(file, content);
/** One version in both histories: `files` told to the fast one (undefined: a full take there too). */
const takeBoth = async (files: string[] | undefined) => {
  const { quick, reference } = await pair.takeBoth({ files });
  return { fast: quick, reference };
};
const expectAgreement = (files: string[] | undefined) => pair.expectAgreement({ files });

describe("a take of known files", () => {
  it("agrees with git's own take, commit for commit, over adds, edits, deletes, modes and odd content", async () => {
    await put("index.html", "<h1>start</h1>\n");
    await put("src/app/main.ts", "export const a = 1;\n");
    await expectAgreement(undefined);

    const runs = shellRuns(fast);
    const steps: [string, () => Promise<void>][] = [
      ["src/app/main.ts", () => put("src/app/main.ts", "export const a = 2;\nexport const b = 3;\n")],
      ["src/app/new/deep/file.ts", () => put("src/app/new/deep/file.ts", "one\ntwo\nthree")],
      ["src/app/new/deep/file.ts", () => put("src/app/new/deep/file.ts", "one\ntwo\nthree\n")],
      ["README.md", () => put("README.md", "")],
      [
        "bin/run.sh",
        async () => {
          await put("bin/run.sh", "#!/bin/sh\necho hi\n");
          await chmod(path.join(ws, "bin/run.sh"), 0o755);
        },
      ],
      ["logo.bin", () => put("logo.bin", Buffer.from([0x89, 0x50, 0x00, 0x01, 0x0a, 0xff]))],
      ["latin.txt", () => put("latin.txt", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]))],
      ["latin.txt", () => put("latin.txt", Buffer.from([0x63, 0x61, 0x66, 0xe8, 0x0a]))],
      ["crlf.txt", () => put("crlf.txt", "a\r\nb\r\n")],
      ["crlf.txt", () => put("crlf.txt", "a\nb\r\n")],
      ["name with spaces and ünïcode.txt", () => put("name with spaces and ünïcode.txt", "x\n")],
      ["-leading-dash.txt", () => put("-leading-dash.txt", "dash\n")],
      ["a-b", () => put("a-b", "sorts between a and a/\n")],
      ["a/b", () => put("a/b", "in a folder\n")],
      [".gitignore", () => put(".gitignore", "*\n")],
      ["src/app/main.ts", () => unlink(path.join(ws, "src/app/main.ts"))],
      ["src/app/new/deep/file.ts", () => unlink(path.join(ws, "src/app/new/deep/file.ts"))],
      ["index.html", () => put("index.html", "<h1>start</h1>\n")],
      ["never-written.txt", async () => {}],
    ];
    for (const [file, change] of steps) {
      await change();
      await expectAgreement([file]);
    }
    // None of them needed git: only the first (full) take loaded nothing, and the model was read by ls-tree, not here.
    expect(runs.count()).toBe(0);
    // The repository is sound by git's own check.
    execFileSync("git", ["fsck", "--strict", "--no-dangling"], { env: { ...process.env, GIT_DIR: fast.gitDir } });
  });

  it("hands whatever git checks or skips to a full take, and stays in step after one", async () => {
    await put("a.txt", "a\n");
    await expectAgreement(undefined);
    const runs = shellRuns(fast);

    await put("big.txt", "x".repeat(5000));
    expect((await expectAgreement(["big.txt"])).skipped).toEqual([
      expect.objectContaining({ path: "big.txt", reason: expect.stringMatching(/over the 4096-byte limit/) }),
    ]);
    await symlink("a.txt", path.join(ws, "link"));
    await expectAgreement(["link"]);
    await put("vendor/lib/.git/HEAD", "ref: refs/heads/main\n");
    await put("vendor/lib/x.js", "x\n");
    await expectAgreement(["vendor/lib/x.js"]);
    await put(".GIT/config", "[core]\n");
    await expectAgreement([".GIT/config"]);
    const fullTakes = runs.count();
    expect(fullTakes).toBeGreaterThanOrEqual(8); // four takes, two shell commands each

    // A command changed files (a full take in both), then a write: the model followed, no git again.
    await put("from-command.txt", "made by a command\n");
    await unlink(path.join(ws, "a.txt"));
    await expectAgreement(undefined);
    const afterCommand = runs.count();
    await put("b.txt", "b\n");
    await expectAgreement(["b.txt"]);
    expect(runs.count()).toBe(afterCommand);
  });

  it("stores nothing under a folder history never keeps", async () => {
    await put("a.txt", "a\n");
    await expectAgreement(undefined);
    await put("node_modules/pkg/index.js", "module.exports = 1;\n");
    const { fast: taken } = await takeBoth(["node_modules/pkg/index.js"]);
    expect(taken.commit).toBeNull();
  });

  it("finds a file where the tree has a folder, and takes it in full", async () => {
    await put("thing/inside.txt", "inside\n");
    await expectAgreement(undefined);
    await rm(path.join(ws, "thing"), { recursive: true });
    await put("thing", "now a file\n");
    // Told only of "thing": the folder's file went too, which only a full take sees.
    await expectAgreement(["thing"]);
  });
});
