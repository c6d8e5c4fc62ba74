import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitShell, shellQuote } from "./git-shell";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-git-shell-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("GitShell", () => {
  it("runs commands one at a time in the history's environment and gives their exit codes", async () => {
    const shell = new GitShell(path.join(root, "h.git"), root);
    const out = path.join(root, "out");
    const runs = [
      shell.run(`printf '%s' "$GIT_DIR" > ${shellQuote(out)}`),
      shell.run("exit 3"),
      shell.run(`test "$GIT_CONFIG_NOSYSTEM" = 1`),
    ];
    expect(await Promise.all(runs)).toEqual([0, 3, 0]);
    expect(await readFile(out, "utf8")).toBe(path.join(root, "h.git"));
    shell.close();
  });

  it("quotes words so names with quotes, spaces and $ stay one word", async () => {
    const shell = new GitShell(root, root);
    const name = path.join(root, "it's a $HOME `x`");
    expect(await shell.run(`printf x > ${shellQuote(name)}`)).toBe(0);
    expect(await readFile(name, "utf8")).toBe("x");
    shell.close();
  });

  it("runs each command from the workspace folder as it is now, even after the folder was replaced", async () => {
    const ws = path.join(root, "replaced-ws");
    await mkdir(ws);
    const shell = new GitShell(path.join(root, "h.git"), ws);
    expect(await shell.run("true")).toBe(0); // the shell starts in the first folder
    await rename(ws, `${ws}.old`);
    await rm(`${ws}.old`, { recursive: true });
    await mkdir(ws);
    await writeFile(path.join(ws, "marker"), "x");
    expect(await shell.run("test -e marker")).toBe(0);
    shell.close();
  });

  it("kills a command that does not answer in time, and the next one gets a new shell", async () => {
    const shell = new GitShell(root, root);
    await expect(shell.run("sleep 5", { timeoutMs: 200 })).rejects.toThrow(/no answer within 200 ms/);
    expect(await shell.run("true")).toBe(0);
    shell.close();
  });
});
