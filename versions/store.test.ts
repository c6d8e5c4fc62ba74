import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { historyPath, ProjectHistory } from "./store";

let root: string;
let ws: string;
let history: ProjectHistory;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-history-"));
  ws = path.join(root, "workspaces", "p1");
  await mkdir(ws, { recursive: true });
  history = new ProjectHistory(historyPath(root, "p1"), ws, 1024);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function write(file: string, content: string) {
  await mkdir(path.dirname(path.join(ws, file)), { recursive: true });
  await writeFile(path.join(ws, file), content);
}

async function version(parent: string | null = null) {
  const snap = await history.snapshot();
  return { sha: await history.commit(snap.tree, parent, "v"), skipped: snap.skipped };
}

async function pathsAt(sha: string) {
  return (await history.files(sha)).map((f) => f.path);
}

describe("ProjectHistory", () => {
  it("keeps the repository outside the workspace", async () => {
    await write("a.txt", "a");
    await version();
    expect(history.gitDir).toBe(path.join(root, "history", "p1.git"));
    expect(existsSync(path.join(history.gitDir, "HEAD"))).toBe(true);
    expect(existsSync(path.join(ws, ".git"))).toBe(false);
  });

  it("packs the loose objects its versions wrote, and every version still reads and restores", async () => {
    await write("a.txt", "one\n");
    await write("src/b.ts", "export const b = 1;\n");
    const v1 = await version();
    await write("a.txt", "two\n");
    const v2 = await version(v1.sha);
    const objects = () =>
      Object.fromEntries(
        execFileSync("git", ["count-objects", "-v"], { env: { ...process.env, GIT_DIR: history.gitDir } })
          .toString()
          .trim()
          .split("\n")
          .map((line) => line.split(": ") as [string, string]),
      );
    expect(Number(objects().count)).toBeGreaterThan(0);
    await history.pack();
    expect(objects()).toMatchObject({ count: "0", packs: "1" });
    expect(Number(objects()["in-pack"])).toBeGreaterThanOrEqual(6);
    expect(await pathsAt(v1.sha)).toEqual(["a.txt", "src/b.ts"]);
    await history.restore(v1.sha);
    expect(await readFile(path.join(ws, "a.txt"), "utf8")).toBe("one\n");
    expect((await history.changes(v1.sha, v2.sha)).files).toEqual([
      { path: "a.txt", status: "changed", linesAdded: 1, linesDeleted: 1 },
    ]);
  });

  it("records added, changed and deleted files with line counts, and restores exactly", async () => {
    await write("a.txt", "one\ntwo\n");
    await write("src/b.ts", "export const b = 1;\n");
    const v1 = await version();
    await write("a.txt", "one\nTWO\nthree\n");
    await rm(path.join(ws, "src/b.ts"));
    await write("c.md", "# c\n");
    const v2 = await version(v1.sha);

    const changes = await history.changes(v1.sha, v2.sha);
    expect(changes).toMatchObject({ added: 1, changed: 1, deleted: 1 });
    expect(changes.files).toEqual([
      { path: "a.txt", status: "changed", linesAdded: 2, linesDeleted: 1 },
      { path: "c.md", status: "added", linesAdded: 1, linesDeleted: 0 },
      { path: "src/b.ts", status: "deleted", linesAdded: 0, linesDeleted: 1 },
    ]);
    expect(await history.fileDiff(v1.sha, v2.sha, "a.txt")).toContain("-two\n+TWO\n+three");

    await write("untracked-later.txt", "x");
    await history.restore(v1.sha);
    expect(await readFile(path.join(ws, "a.txt"), "utf8")).toBe("one\ntwo\n");
    expect(await readFile(path.join(ws, "src/b.ts"), "utf8")).toBe("export const b = 1;\n");
    expect(existsSync(path.join(ws, "c.md"))).toBe(false);
    expect(existsSync(path.join(ws, "untracked-later.txt"))).toBe(false);

    await history.restore(v2.sha);
    expect(await readFile(path.join(ws, "a.txt"), "utf8")).toBe("one\nTWO\nthree\n");
    expect(existsSync(path.join(ws, "src/b.ts"))).toBe(false);
  });

  it("never stores node_modules or build output, and a restore leaves them alone", async () => {
    await write("index.js", "1");
    await write("node_modules/x/index.js", "dep");
    await write("web/node_modules/y/index.js", "dep");
    await write("dist/out.js", "built");
    await write(".vite/deps.json", "{}");
    const v1 = await version();
    expect(await pathsAt(v1.sha)).toEqual(["index.js"]);
    await rm(path.join(ws, "index.js"));
    await history.restore(v1.sha);
    expect(await readFile(path.join(ws, "node_modules/x/index.js"), "utf8")).toBe("dep");
    expect(await readFile(path.join(ws, "dist/out.js"), "utf8")).toBe("built");
    expect(await readFile(path.join(ws, "index.js"), "utf8")).toBe("1");
  });

  it("ignores the workspace's .gitignore, .gitattributes and .git folder", async () => {
    await write(".gitignore", "*\n");
    await write(".gitattributes", "* text eol=crlf filter=evil\n");
    await write("secret.txt", "line1\r\nline2\n");
    await write(".git/config", '[core]\n\thooksPath = /tmp/evil\n[filter "evil"]\n\tclean = touch /tmp/dyno-pwned\n');
    await write(".git/HEAD", "ref: refs/heads/main\n");
    const v1 = await version();
    expect(await pathsAt(v1.sha)).toEqual([".gitattributes", ".gitignore", "secret.txt"]);
    expect((await history.readFile(v1.sha, "secret.txt"))!.toString()).toBe("line1\r\nline2\n");

    // The agent wipes its .git and the file: history does not care.
    await rm(path.join(ws, ".git"), { recursive: true });
    await rm(path.join(ws, "secret.txt"));
    await history.restore(v1.sha);
    expect(await readFile(path.join(ws, "secret.txt"), "utf8")).toBe("line1\r\nline2\n");
    expect(existsSync("/tmp/dyno-pwned")).toBe(false);
  });

  it("keeps odd file names: spaces, unicode, leading dashes, quotes, newlines", async () => {
    const names = [
      "with space.txt",
      "ünïcødé/日本.md",
      "-rf",
      "--help",
      "a\"quote'.txt",
      "new\nline.txt",
      ":(exclude)x",
    ];
    for (const name of names) await write(name, name);
    const v1 = await version();
    expect((await pathsAt(v1.sha)).sort()).toEqual([...names].sort());
    for (const name of names) await rm(path.join(ws, name));
    await history.restore(v1.sha);
    for (const name of names) expect(await readFile(path.join(ws, name), "utf8")).toBe(name);
  });

  it("stores symlinks as links, and never writes through one to outside the workspace", async () => {
    const outside = path.join(root, "outside");
    await mkdir(outside);
    await write("dir/file.txt", "inside");
    const v1 = await version();
    // The agent swaps the folder for a link to outside, then restores the folder version.
    await rm(path.join(ws, "dir"), { recursive: true });
    await symlink(outside, path.join(ws, "dir"));
    await symlink("/etc/passwd", path.join(ws, "passwd-link"));
    const v2 = await version(v1.sha);
    expect(await pathsAt(v2.sha)).toEqual(["dir", "passwd-link"]);
    await history.restore(v1.sha);
    expect((await lstat(path.join(ws, "dir"))).isDirectory()).toBe(true);
    expect(await readFile(path.join(ws, "dir/file.txt"), "utf8")).toBe("inside");
    expect(existsSync(path.join(outside, "file.txt"))).toBe(false);
    // And back: the link is a link again, pointing where it did.
    await history.restore(v2.sha);
    expect(await readlink(path.join(ws, "dir"))).toBe(outside);
    expect(existsSync(path.join(outside, "file.txt"))).toBe(false);
  });

  it("names a nested repository and files over the size cap as skipped", async () => {
    await write("ok.txt", "fine");
    await write("big.bin", "x".repeat(2000));
    await write("vendor/lib/a.js", "a");
    execFileSync("git", ["init", "-q"], { cwd: path.join(ws, "vendor/lib") });
    const v1 = await version();
    expect(await pathsAt(v1.sha)).toEqual(["ok.txt"]);
    expect(v1.skipped.map((s) => s.path).sort()).toEqual(["big.bin", "vendor/lib/"]);
    expect(v1.skipped.find((s) => s.path === "big.bin")!.reason).toMatch(/over the 1024-byte limit/);
  });

  it("a file that grows over the cap leaves history and stays in the workspace on restore", async () => {
    await write("grow.txt", "small");
    const v1 = await version();
    await write("grow.txt", "y".repeat(5000));
    const v2 = await version(v1.sha);
    expect(await pathsAt(v2.sha)).toEqual([]);
    expect(v2.skipped[0]!.path).toBe("grow.txt");
  });

  it("survives a lock file left by a killed git", async () => {
    await write("a.txt", "a");
    const v1 = await version();
    await writeFile(path.join(history.gitDir, "index.lock"), "");
    await write("a.txt", "b");
    const v2 = await version(v1.sha);
    expect((await history.changes(v1.sha, v2.sha)).changed).toBe(1);
  });

  it("zips a version", async () => {
    await write("a.txt", "hello");
    const v1 = await version();
    const zip = await history.zip(v1.sha);
    expect(zip.subarray(0, 2).toString()).toBe("PK");
  });
});
