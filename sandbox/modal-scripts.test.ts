/**
 * The Modal provider's in-sandbox scripts, run here with this machine's sh
 * and coreutils (node:20-slim has the same dash, coreutils and util-linux),
 * since Modal itself cannot be reached from the test machines.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  execArgv,
  IS_FOLDER,
  killArgv,
  listFilesArgv,
  MISSING,
  NOT_FOLDER_OR_FILE,
  readHeadArgv,
} from "./modal-scripts";

interface Finished {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** `detached` makes the first process a group leader, as it may be in Modal: then setsid has to fork. */
function start(argv: string[], cwd: string, detached = false): { done: Promise<Finished> } {
  const [file, ...args] = argv;
  const child = spawn(file!, args, { cwd, detached, stdio: ["ignore", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Finished>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr }));
  });
  return { done };
}

const run = (argv: string[], cwd: string) => start(argv, cwd).done;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("modal provider scripts (run locally)", () => {
  let workspace: string;

  beforeAll(async () => {
    workspace = await mkdtemp(path.join(os.tmpdir(), "dyno-modal-scripts-"));
    for (const file of [
      "b.txt",
      "a.txt",
      "a/z.txt",
      "src/.hidden",
      "node_modules/p/i.js",
      ".git/HEAD",
      "src/node_modules/x.js",
      "sp ace/q'uote\".txt",
    ]) {
      await mkdir(path.dirname(path.join(workspace, file)), { recursive: true });
      await writeFile(path.join(workspace, file), file);
    }
    await symlink("/etc", path.join(workspace, "link-to-etc"));
    await writeFile(path.join(workspace, "accents.txt"), "é".repeat(1000));
  });

  afterAll(async () => {
    await rm(workspace, { recursive: true, force: true });
  });

  it("lists files in tree order, pruning node_modules and .git, without following links", async () => {
    const result = await run(listFilesArgv(workspace, 100), workspace);
    expect(result.code).toBe(0);
    expect(result.stdout.toString().split("\0").filter(Boolean)).toEqual([
      "./a/z.txt",
      "./a.txt",
      "./accents.txt",
      "./b.txt",
      "./link-to-etc",
      "./sp ace/q'uote\".txt",
      "./src/.hidden",
    ]);
    const firstTwo = await run(listFilesArgv(workspace, 2), workspace);
    expect(firstTwo.stdout.toString().split("\0").filter(Boolean)).toEqual(["./a/z.txt", "./a.txt"]);
  });

  it("tells a missing folder from a file", async () => {
    expect((await run(listFilesArgv(path.join(workspace, "nope"), 10), workspace)).code).toBe(MISSING);
    expect((await run(listFilesArgv(path.join(workspace, "a.txt"), 10), workspace)).code).toBe(NOT_FOLDER_OR_FILE);
  });

  it("reads a file's size and head", async () => {
    const result = await run(readHeadArgv(path.join(workspace, "accents.txt"), 11), workspace);
    expect(result.code).toBe(0);
    expect(result.stderr.trim()).toBe("2000");
    expect(result.stdout.length).toBe(11);
    expect(
      (await run(readHeadArgv(path.join(workspace, "sp ace/q'uote\".txt"), 1000), workspace)).stdout.toString(),
    ).toBe("sp ace/q'uote\".txt");
  });

  it("tells a missing file, a folder and a non-file apart", async () => {
    expect((await run(readHeadArgv(path.join(workspace, "nope.txt"), 10), workspace)).code).toBe(MISSING);
    expect((await run(readHeadArgv(path.join(workspace, "a"), 10), workspace)).code).toBe(IS_FOLDER);
    expect((await run(readHeadArgv("/dev/null", 10), workspace)).code).toBe(NOT_FOLDER_OR_FILE);
  });

  it("runs a command with its exit code and output, and cleans up its pid file", async () => {
    const pidFile = path.join(workspace, "plain.pid");
    const result = await run(execArgv(pidFile, 'echo "$0:$1"; echo err >&2; exit 3'), workspace);
    expect(result).toMatchObject({ code: 3, stderr: "err\n" });
    expect(result.stdout.toString()).toBe("sh:\n");
    expect(existsSync(pidFile)).toBe(false);
  });

  it.each([false, true])(
    "kills the command's whole process group, background children included (group leader: %s)",
    async (leader) => {
      const pidFile = path.join(workspace, `group-${leader}.pid`);
      const late = path.join(workspace, `late-${leader}.txt`);
      const running = start(execArgv(pidFile, `(sleep 1; echo late > '${late}') & sleep 30`), workspace, leader);
      await sleep(300);
      expect(existsSync(pidFile)).toBe(true);
      const kill = await run(killArgv(pidFile), workspace);
      expect(kill.code).toBe(0);
      const result = await running.done;
      expect(result.code).not.toBe(0);
      await sleep(1_500);
      expect(existsSync(late)).toBe(false);
      expect(existsSync(pidFile)).toBe(false);
    },
  );
});
