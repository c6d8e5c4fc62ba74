import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareListedPaths, normalizeWorkspacePath, resolveWorkspacePath } from "./paths";
import { SandboxPathError } from "./types";

describe("normalizeWorkspacePath", () => {
  it.each([
    ["src/a.js", "src/a.js"],
    ["/src/a.js", "src/a.js"],
    ["//src//a.js/", "src/a.js"],
    ["./src/./a.js", "src/a.js"],
    ["src/lib/../a.js", "src/a.js"],
    ["src\\lib\\a.js", "src/lib/a.js"],
    ["", ""],
    [".", ""],
    ["/", ""],
    ["a/..", ""],
    ["C:/x", "C:/x"],
    ["name with spaces/ü.txt", "name with spaces/ü.txt"],
    ["..file", "..file"],
    ["a/...", "a/..."],
  ])("%j -> %j", (input, expected) => {
    expect(normalizeWorkspacePath(input)).toBe(expected);
  });

  it.each([
    ["..", /leaves the workspace/],
    ["../x", /leaves the workspace/],
    ["../../etc/passwd", /leaves the workspace/],
    ["a/../../x", /leaves the workspace/],
    ["/../x", /leaves the workspace/],
    ["..\\..\\x", /leaves the workspace/],
    ["src\\..\\..\\x", /leaves the workspace/],
    ["~", /not expanded/],
    ["~/x", /not expanded/],
    ["a\0b", /NUL byte/],
    ["x".repeat(5000), /longer than 4096/],
    [`a/${"n".repeat(300)}`, /longer than 255 bytes/],
  ])("refuses %j", (input, message) => {
    expect(() => normalizeWorkspacePath(input)).toThrow(SandboxPathError);
    expect(() => normalizeWorkspacePath(input)).toThrow(message);
  });

  it("names the path in its errors, escaped and shortened", () => {
    expect(() => normalizeWorkspacePath("../secret")).toThrow('Path "../secret" leaves the workspace');
    expect(() => normalizeWorkspacePath("a\0b")).toThrow('Path "a\\u0000b" contains a NUL byte');
    const long = () => normalizeWorkspacePath("y".repeat(5000));
    expect(long).toThrow(/\(5000 characters\)/);
  });

  it("refuses non-strings", () => {
    expect(() => normalizeWorkspacePath(undefined as unknown as string)).toThrow(SandboxPathError);
  });
});

describe("resolveWorkspacePath", () => {
  let base: string;
  let root: string;
  let outside: string;

  beforeAll(async () => {
    base = await realpath(await mkdtemp(path.join(os.tmpdir(), "dyno-paths-")));
    root = path.join(base, "workspace");
    outside = path.join(base, "outside");
    await mkdir(path.join(root, "src", "lib"), { recursive: true });
    await mkdir(outside);
    await writeFile(path.join(outside, "secret.txt"), "secret");
    await writeFile(path.join(root, "src", "a.js"), "a");
    await symlink("/etc/passwd", path.join(root, "passwd"));
    await symlink(outside, path.join(root, "out"));
    await symlink("../outside/secret.txt", path.join(root, "relative-out"));
    await symlink(path.join(outside, "missing", "new.txt"), path.join(root, "dangling-out"));
    await symlink("src/lib/not-yet.txt", path.join(root, "dangling-in"));
    await symlink("src", path.join(root, "alias"));
    await symlink("lib/..", path.join(root, "src", "up-and-back"));
    await symlink("lib/../../..", path.join(root, "src", "up-and-out"));
    await symlink("loop-b", path.join(root, "loop-a"));
    await symlink("loop-a", path.join(root, "loop-b"));
    await symlink(path.join(root, "src"), path.join(root, "absolute-in"));
    // A link whose target climbs out and comes back in.
    await symlink(`../${path.basename(outside)}/../workspace/src`, path.join(root, "out-and-back"));
  });

  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it.each([
    ["src/a.js", "src/a.js"],
    ["/src/a.js", "src/a.js"],
    ["src/new/deeper/file.txt", "src/new/deeper/file.txt"],
    ["", ""],
    ["alias/a.js", "src/a.js"],
    ["absolute-in/a.js", "src/a.js"],
    ["src/up-and-back/a.js", "src/a.js"],
    ["dangling-in", "src/lib/not-yet.txt"],
    ["out-and-back/a.js", "src/a.js"],
    ["src/a.js/below", "src/a.js/below"],
  ])("resolves %j inside the workspace", async (input, real) => {
    const resolved = await resolveWorkspacePath(root, input);
    expect(resolved.real).toBe(real ? path.join(root, real) : root);
    expect(resolved.relative).toBe(normalizeWorkspacePath(input));
  });

  it.each([
    "passwd",
    "out",
    "out/secret.txt",
    "out/new.txt",
    "relative-out",
    "dangling-out",
    "src/up-and-out",
    "src/up-and-out/x",
  ])("refuses %j, which a symlink leads outside", async (input) => {
    await expect(resolveWorkspacePath(root, input)).rejects.toThrow(SandboxPathError);
    await expect(resolveWorkspacePath(root, input)).rejects.toThrow(/symbolic link that points outside/);
  });

  it("refuses a symlink loop with a clear error", async () => {
    await expect(resolveWorkspacePath(root, "loop-a")).rejects.toThrow(/too many symbolic links/);
  });

  it("refuses lexical escapes before touching the disk", async () => {
    await expect(resolveWorkspacePath(root, "../outside/secret.txt")).rejects.toThrow(/leaves the workspace/);
  });

  it("does not mistake a sibling folder sharing the prefix for the inside", async () => {
    await mkdir(`${root}-sibling`, { recursive: true });
    await symlink(`${root}-sibling`, path.join(root, "sibling"));
    await expect(resolveWorkspacePath(root, "sibling/x")).rejects.toThrow(SandboxPathError);
  });
});

describe("compareListedPaths", () => {
  it("orders folder by folder, by code unit", () => {
    const paths = ["b.txt", "a.txt", "a/z.txt", "a/b/c.txt", "B.txt", "a-b.txt", ".env"];
    expect(paths.sort(compareListedPaths)).toEqual([
      ".env",
      "B.txt",
      "a/b/c.txt",
      "a/z.txt",
      "a-b.txt",
      "a.txt",
      "b.txt",
    ]);
  });
});
