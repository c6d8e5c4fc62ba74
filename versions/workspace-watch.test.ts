/**
 * Takes from the workspace's feed of changes (a command's version, workspace-watch.ts), against git's own: a
 * second history of the same workspace takes every version with git's commands alone, with the same messages
 * and dates, so the two must agree commit for commit, and on every file's change and line counts. The changes
 * are made by other processes, as a command's are.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PairedHistories, shellRuns } from "../tests/support/paired-histories";
import { DEFAULT_WATCH_LIMITS, type WatchLimits } from "./workspace-watch";

let pair: PairedHistories;

afterEach(async () => {
  await pair.remove();
});

/** A pair whose workspace has `files` files in 10 folders (over 1,000: a walk would leave the take to git). */
async function workspaceOf(files: number, watch: Partial<WatchLimits> = {}) {
  pair = await PairedHistories.create("dyno-watch-", { watch: { ...DEFAULT_WATCH_LIMITS, ...watch } });
  for (let i = 0; i < files; i++) await pair.put(`gen/d${i % 10}/f${i}.txt`, `line ${i}\n`);
  // The run's start: the first version is git's, the next sets the feed's baseline (a full take too).
  await pair.expectAgreement({ mode: "commit" });
  await pair.expectAgreement({ mode: "commit" });
  return pair;
}

/** Runs `script` in the workspace in a shell of its own, as a command step does. */
const sh = (script: string) => execFileSync("/bin/sh", ["-c", script], { cwd: pair.ws, stdio: "ignore" });

describe("a take from the feed of the workspace's changes", () => {
  it("agrees with git's own take over what commands do, on 1,200 files, reading only what changed", async () => {
    const { quick } = await workspaceOf(1200);
    const runs = shellRuns(quick);
    const steps = [
      "echo changed >> gen/d1/f1.txt",
      // A folder made and filled at once: its files exist before its watch does.
      "mkdir -p src/app/new/deep && printf 'one\\ntwo\\n' > src/app/new/deep/file.ts && echo x > src/app/main.ts",
      "mkdir -p bin && printf '#!/bin/sh\\necho hi\\n' > bin/run.sh && chmod +x bin/run.sh",
      "chmod -x bin/run.sh",
      "printf '\\211P\\0\\001' > logo.bin && printf 'caf\\351\\n' > latin.txt && printf 'a\\r\\nb\\r\\n' > crlf.txt",
      "echo x > 'name with spaces and ünïcode.txt' && echo dash > ./-leading-dash.txt && echo '*' > .gitignore",
      // Dependencies, build output and the workspace's own .git never enter history.
      "mkdir -p node_modules/pkg src/dist .git/hooks && echo 1 > node_modules/pkg/index.js && echo b > src/dist/b.js && echo evil > .git/hooks/post-commit",
      "echo 2 > node_modules/pkg/index.js && rm -rf .git",
      // A folder becomes a file, a file a folder, a whole tree moves, then moves again and changes inside.
      "rm -rf src/app/new && echo 'now a file' > src/app/new",
      "rm latin.txt && mkdir latin.txt && echo inside > latin.txt/inside.txt",
      "mv src lib",
      "echo 'in the moved folder' > lib/app/main.ts && mv lib/app lib/application",
      "echo 'after two moves' >> lib/application/main.ts",
      "rm -rf gen/d3",
      // A folder put where another was, then changed inside.
      "mkdir -p gen/d3/sub && echo s > gen/d3/sub/s.txt && rm -rf lib/application && mv gen/d3 lib/application",
      "echo 'replaced' > lib/application/sub/s.txt",
      "true", // nothing changed: no version
    ];
    for (const step of steps) {
      sh(step);
      await pair.expectAgreement();
      expect(quick.lastTake, step).toBe("feed");
    }
    // A write_file's take of its one file in between keeps the feed in step.
    await pair.put("lib/application/main.ts", "written by write_file\n");
    await pair.expectAgreement({ files: ["lib/application/main.ts"] });
    sh("echo 'a command after it' >> lib/application/main.ts && echo new > gen/d0/new.txt");
    await pair.expectAgreement();
    expect(quick.lastTake).toBe("feed");
    // A run's end commits even when nothing changed.
    expect((await pair.expectAgreement({ mode: "commit" })).commit).not.toBeNull();
    expect(runs.count()).toBe(0);
    execFileSync("git", ["fsck", "--strict", "--no-dangling"], { env: { ...process.env, GIT_DIR: quick.gitDir } });
  });

  it.skipIf(!existsSync("/usr/bin/bwrap"))(
    "sees what a command changes through bubblewrap's bind of the workspace",
    async () => {
      const { quick, ws } = await workspaceOf(30);
      const inSandbox = (script: string) =>
        execFileSync(
          "bwrap",
          [
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--tmpfs",
            "/run",
            "--bind",
            ws,
            "/run/workspace",
            "--chdir",
            "/run/workspace",
            "/bin/sh",
            "-c",
            script,
          ],
          {
            stdio: "ignore",
          },
        );
      inSandbox("echo sandboxed > gen/d2/f2.txt && mkdir -p made/here && echo x > made/here/y.txt && rm gen/d5/f5.txt");
      const taken = await pair.expectAgreement();
      expect(quick.lastTake).toBe("feed");
      expect(taken.changes).toMatchObject({ added: 1, changed: 1, deleted: 1 });
    },
  );

  it("leaves to git what it cannot be sure of, and is back on the feed after it", async () => {
    const { quick, ws } = await workspaceOf(30, { maxEvents: 200 });
    const cases: [string, string, string][] = [
      ["a symlink", "ln -s gen/d1/f1.txt link", "rm link"],
      // Written through one name, the other changes too, and only the name written has an event.
      ["a hard link", "ln gen/d1/f1.txt gen/d2/linked.txt", "rm gen/d2/linked.txt"],
      ["a file over the cap", "head -c 5000 /dev/zero > big.bin", "rm big.bin"],
      ["a nested repository", "mkdir -p vendor/lib/.git && echo ref > vendor/lib/.git/HEAD", "rm -rf vendor"],
      ["a .git in another case", "mkdir .GIT && echo x > .GIT/config", "rm -rf .GIT"],
      ["a name that is not UTF-8", "echo x > \"$(printf 'f\\377.t')\"", "rm -f \"$(printf 'f\\377.t')\""],
      [
        "more changes than the feed holds",
        "for i in $(seq 1 150); do echo $i > gen/d6/f6.txt; echo $i > gen/d7/f7.txt; done",
        "true",
      ],
      ["the workspace folder replaced", `mv "${ws}" "${ws}.old" && cp -a "${ws}.old" "${ws}"`, `rm -rf "${ws}.old"`],
    ];
    for (const [what, make, undo] of cases) {
      sh(make);
      sh("echo 'a step later' >> gen/d1/f1.txt");
      await pair.expectAgreement();
      expect(quick.lastTake, what).not.toBe("feed");
      sh(undo);
      await pair.expectAgreement(); // a full take: the feed's baseline again
      sh(`echo 'after ${what}' >> gen/d1/f1.txt`);
      await pair.expectAgreement();
      expect(quick.lastTake, what).toBe("feed");
    }
  });

  it("sees a write through one of two linked names change the other", async () => {
    const { quick } = await workspaceOf(30);
    sh("ln gen/d1/f1.txt gen/d2/linked.txt");
    await pair.expectAgreement();
    // Only gen/d1 has an event for this write; gen/d2/linked.txt changes all the same.
    sh("echo 'through one name' >> gen/d1/f1.txt");
    const taken = await pair.expectAgreement();
    expect(taken.changes?.files.map((f) => f.path)).toEqual(["gen/d1/f1.txt", "gen/d2/linked.txt"]);
    expect(quick.lastTake).not.toBe("feed");
  });

  it.skipIf(!existsSync("/usr/bin/python3"))(
    "reads every file at a run's end, so a change no event told of (a write through a memory map) is in it",
    async () => {
      const { quick } = await workspaceOf(30);
      // inotify does not report writes through a shared mapping (inotify(7)): the feed cannot see this one.
      execFileSync(
        "/usr/bin/python3",
        [
          "-c",
          "import mmap; f = open('gen/d1/f1.txt', 'r+b'); m = mmap.mmap(f.fileno(), 0); m[0:4] = b'LINE'; m.flush()",
        ],
        { cwd: pair.ws },
      );
      const end = await pair.expectAgreement({ mode: "commit", exact: true });
      expect(quick.lastTake).not.toBe("feed");
      expect(end.changes?.files.map((f) => f.path)).toEqual(["gen/d1/f1.txt"]);
    },
  );

  it("keeps up with a steady trickle of changes (an app writing its log), however many between two takes", async () => {
    const { quick, ws } = await workspaceOf(30, { maxEvents: 200 });
    for (let i = 0; i < 300; i++) {
      await writeFile(path.join(ws, i % 2 ? "app.log" : "other.log"), `line ${i}\n`, { flag: "a" });
      await new Promise((resolve) => setImmediate(resolve));
    }
    await pair.expectAgreement();
    expect(quick.lastTake).toBe("feed");
  });

  it("is not used where it cannot watch every folder, nor after it was idle", async () => {
    const { quick } = await workspaceOf(30, { maxFolders: 5 });
    sh("echo changed >> gen/d1/f1.txt");
    await pair.expectAgreement();
    expect(quick.lastTake).toBe("walk");

    await pair.remove();
    const idle = await workspaceOf(30, { idleMs: 1000 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    sh("echo changed >> gen/d1/f1.txt");
    await idle.expectAgreement();
    expect(idle.quick.lastTake).toBe("walk"); // watching again from this take on
    sh("echo again >> gen/d1/f1.txt");
    await idle.expectAgreement();
    expect(idle.quick.lastTake).toBe("feed");
  });

  it("reads a small workspace from the feed too, not a walk", async () => {
    const { quick, ws } = await workspaceOf(20);
    await mkdir(path.join(ws, "more"));
    sh("echo a > more/a.txt && rm gen/d0/f0.txt");
    await pair.expectAgreement();
    expect(quick.lastTake).toBe("feed");
    await rm(path.join(ws, "more"), { recursive: true });
    await pair.expectAgreement();
    expect(quick.lastTake).toBe("feed");
  });
});
