import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkLocalIsolation, findBwrap } from "./bubblewrap";
import { describeSandboxContract } from "./contract";
import { appCheckout, localHomePath, openLocalSandbox, type LocalIsolation } from "./local";
import { SandboxPathError, SandboxUnavailableError, type Sandbox } from "./types";

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "dyno-sandbox-test-"));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function openFresh(isolation: LocalIsolation = "bubblewrap"): Promise<Sandbox> {
  return openLocalSandbox({ dataDir, projectId: randomUUID(), isolation });
}

describeSandboxContract("local, bubblewrap", () => openFresh("bubblewrap"));
describeSandboxContract("local, isolation none", () => openFresh("none"));

/** Host processes whose command line contains `marker` (bubblewrap's pid namespaces are still visible from here). */
async function processesWith(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(marker)) found.push(Number(entry));
  }
  return found;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("local sandbox under bubblewrap", () => {
  let sandbox: Sandbox;

  beforeAll(async () => {
    const check = await checkLocalIsolation();
    if (!check.available) throw new Error(`these tests need bubblewrap: ${check.reason}`);
    sandbox = await openFresh();
  });

  afterAll(async () => {
    await sandbox?.destroy();
  });

  it("runs node inside, in /workspace", async () => {
    const result = await sandbox.exec('node -e "console.log(1+1)" && pwd');
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("2\n/workspace\n");
  });

  it("has no network, not even to a server on the host's loopback", async () => {
    // The client exits as soon as it connects, so the server's side may see a reset: not an error here.
    const server = net.createServer((socket) => socket.on("error", () => {}).end("hello\n"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    const connect =
      `node -e "require('net').connect(${port}, '127.0.0.1')` +
      `.on('connect', () => { console.log('connected'); process.exit(0) })` +
      `.on('error', (e) => { console.log(e.code); process.exit(7) })"`;
    try {
      const isolated = await sandbox.exec(connect, { timeoutMs: 20_000 });
      expect(isolated.stdout).not.toContain("connected");
      expect(isolated.exitCode).toBe(7);
      // The same command reaches the server without isolation, so the check above can fail.
      const unisolated = await openFresh("none");
      try {
        expect((await unisolated.exec(connect, { timeoutMs: 20_000 })).stdout).toBe("connected\n");
      } finally {
        await unisolated.destroy();
      }
    } finally {
      server.close();
    }
    expect((await sandbox.exec("getent hosts registry.npmjs.org")).exitCode).not.toBe(0);
    const fetch = await sandbox.exec(
      `node -e "fetch('http://example.com').then(() => console.log('fetched'), () => process.exit(9))"`,
      {
        timeoutMs: 30_000,
      },
    );
    expect(fetch.stdout).not.toContain("fetched");
    expect(fetch.exitCode).toBe(9);
  });

  it.each<LocalIsolation>(["bubblewrap", "none"])("passes none of the app's environment in (%s)", async (isolation) => {
    const secret = `s3cr3t-${randomUUID()}`;
    process.env.DYNO_TEST_SECRET = secret;
    const box = isolation === "bubblewrap" ? sandbox : await openFresh("none");
    try {
      const result = await box.exec("env");
      expect(result.exitCode).toBe(0);
      expect(result.stdout).not.toContain(secret);
      const names = result.stdout
        .trim()
        .split("\n")
        .map((line) => line.split("=")[0]);
      expect(names).toEqual(expect.arrayContaining(["PATH", "HOME", "LANG", "TERM"]));
      const allowed = ["PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "OLDPWD", "_", "NO_UPDATE_NOTIFIER"];
      for (const name of names)
        expect([...allowed, ...names.filter((n) => n?.startsWith("npm_config_"))]).toContain(name);
      // Nor through /proc: the sandbox has a /proc of its own, where only its own processes live.
      const proc = await box.exec("cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'");
      expect(proc.stdout).not.toContain(secret);
    } finally {
      delete process.env.DYNO_TEST_SECRET;
      if (box !== sandbox) await box.destroy();
    }
  });

  it("cannot write outside the workspace", async () => {
    const tag = randomUUID();
    const attempts = [
      `echo x > /usr/dyno-${tag}`,
      `touch /tmp/../etc/dyno-${tag}`,
      `echo x > "$HOME/../dyno-${tag}"`,
      `mkdir -p /var/dyno-${tag}`,
    ];
    for (const command of attempts) {
      const result = await sandbox.exec(command);
      expect(result.exitCode, command).not.toBe(0);
    }
    // /tmp is private to the command: writable inside, invisible outside.
    expect((await sandbox.exec(`echo x > /tmp/dyno-${tag} && cat /tmp/dyno-${tag}`)).stdout).toBe("x\n");
    for (const outside of [
      `/usr/dyno-${tag}`,
      `/etc/dyno-${tag}`,
      `/dyno-${tag}`,
      `/var/dyno-${tag}`,
      `/tmp/dyno-${tag}`,
    ]) {
      expect(existsSync(outside), outside).toBe(false);
    }
    expect(existsSync(path.join(dataDir, "workspaces", `dyno-${tag}`))).toBe(false);
  });

  it("does not read or write through a symlink that points outside", async () => {
    expect((await sandbox.exec("ln -s /etc/passwd leak && ln -s ../../../../../../.. up")).exitCode).toBe(0);
    await expect(sandbox.readFile("leak")).rejects.toBeInstanceOf(SandboxPathError);
    await expect(sandbox.readFile("up/etc/passwd")).rejects.toBeInstanceOf(SandboxPathError);
    await expect(sandbox.listFiles("up")).rejects.toBeInstanceOf(SandboxPathError);

    // Writes go at a decoy of our own, so a regression here cannot damage the machine running the tests.
    const decoy = path.join(dataDir, `decoy-${randomUUID()}.txt`);
    await writeFile(decoy, "original");
    expect((await sandbox.exec(`ln -s ${decoy} decoy-link`)).exitCode).toBe(0);
    await expect(sandbox.readFile("decoy-link")).rejects.toBeInstanceOf(SandboxPathError);
    await expect(sandbox.writeFile("decoy-link", "overwritten")).rejects.toBeInstanceOf(SandboxPathError);
    expect(await readFile(decoy, "utf8")).toBe("original");

    const outside = path.join(os.tmpdir(), `dyno-outside-${randomUUID()}`);
    expect((await sandbox.exec(`ln -s ${outside} out`)).exitCode).toBe(0);
    await expect(sandbox.writeFile("out/x", "x")).rejects.toBeInstanceOf(SandboxPathError);
    await expect(sandbox.writeFile("out", "x")).rejects.toBeInstanceOf(SandboxPathError);
    expect(existsSync(outside)).toBe(false);

    // Links are listed, not followed.
    expect((await sandbox.listFiles()).files).toEqual(expect.arrayContaining(["leak", "out", "up"]));
    expect((await sandbox.listFiles()).files.some((file) => file.startsWith("up/"))).toBe(false);
  });

  it("follows a symlink that stays inside the workspace", async () => {
    expect(
      (await sandbox.exec("mkdir -p real-dir && ln -s real-dir alias && ln -s alias/file.txt dangling")).exitCode,
    ).toBe(0);
    expect((await sandbox.writeFile("alias/a.txt", "via alias")).path).toBe("alias/a.txt");
    expect((await sandbox.readFile("real-dir/a.txt")).content).toBe("via alias");
    // A dangling link whose target is inside: writing through it creates the target.
    await sandbox.writeFile("dangling", "through a dangling link");
    expect((await sandbox.readFile("real-dir/file.txt")).content).toBe("through a dangling link");
  });

  it("kills everything a timed-out command started", async () => {
    const marker = `100${Math.floor(Math.random() * 1e6)}`;
    const result = await sandbox.exec(`for i in 1 2 3; do sleep ${marker} & done; yes > /dev/null & wait`, {
      timeoutMs: 500,
    });
    expect(result.timedOut).toBe(true);
    await sleep(200);
    expect(await processesWith(marker)).toEqual([]);
  });

  it("ends a command's background processes when it exits", async () => {
    const marker = `200${Math.floor(Math.random() * 1e6)}`;
    const started = Date.now();
    const result = await sandbox.exec(`sleep ${marker} & echo done`);
    expect(result).toMatchObject({ exitCode: 0, stdout: "done\n" });
    expect(Date.now() - started).toBeLessThan(10_000);
    await sleep(200);
    expect(await processesWith(marker)).toEqual([]);
  });

  it("keeps memory bounded however much a command prints", async () => {
    const before = process.memoryUsage().rss;
    const result = await sandbox.exec("yes | head -c 500000000");
    expect(result.exitCode).toBe(0);
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.stdout)).toBeLessThan(64 * 1024 + 100);
    expect(result.stdout).toMatch(/\[… 4999\d{5} bytes omitted …\]/);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });

  it("creates files with ordinary permissions", async () => {
    await sandbox.writeFile("perm/file.txt", "x");
    const workspace = (await sandbox.preview()) as { kind: "directory"; path: string };
    const mask = process.umask();
    expect((await stat(path.join(workspace.path, "perm/file.txt"))).mode & 0o777).toBe(0o644 & ~mask);
    expect((await stat(path.join(workspace.path, "perm"))).mode & 0o777).toBe(0o755 & ~mask);
  });
});

describe("what a command can see of the app", () => {
  // A checkout and a data folder where a container would put them (/usr/src/app), under a folder every sandbox binds.
  let base: string;
  let checkout: string;
  let appData: string;
  let sandbox: Sandbox;

  beforeAll(async () => {
    base = await mkdtemp("/usr/local/dyno-visibility-test-");
    checkout = path.join(base, "app");
    appData = path.join(base, "app-data");
    await mkdir(path.join(checkout, "server"), { recursive: true });
    await writeFile(path.join(checkout, ".env"), "SESSION_SECRET=checkout-secret-value\n");
    await writeFile(path.join(checkout, "server", "app.ts"), "// the app's code\n");
    await mkdir(path.join(appData, "workspaces", "other-project"), { recursive: true });
    await writeFile(path.join(appData, "session-secret"), "data-secret-value");
    await writeFile(path.join(appData, "workspaces", "other-project", "private.txt"), "another builder's file");
    sandbox = await openLocalSandbox({ dataDir: appData, projectId: randomUUID(), hide: [checkout] });
  });

  afterAll(async () => {
    await sandbox?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it("cannot list or read the app's checkout or data folder, even under a bound system folder", async () => {
    // The folders are there, and /usr/local is visible: the sandbox binds /usr.
    expect(existsSync(path.join(checkout, ".env"))).toBe(true);
    expect((await sandbox.exec("ls /usr/local")).stdout).toContain(path.basename(base));
    for (const command of [
      `cat ${checkout}/.env`,
      `cat ${checkout}/server/app.ts`,
      `cat ${appData}/session-secret`,
      `cat ${appData}/workspaces/other-project/private.txt`,
      `grep -r secret-value ${base}`,
    ]) {
      const result = await sandbox.exec(command);
      expect(result.exitCode, command).not.toBe(0);
      expect(result.stdout, command).not.toMatch(/secret-value|builder's file|the app's code/);
    }
    for (const folder of [checkout, appData]) {
      expect((await sandbox.exec(`ls -A ${folder}`)).stdout, folder).toBe("");
      expect((await sandbox.exec(`touch ${folder}/x`)).exitCode, folder).not.toBe(0);
    }
    // The workspace, which lives in the data folder, still works.
    expect((await sandbox.exec("echo mine > mine.txt && cat mine.txt")).stdout).toBe("mine\n");
    expect((await sandbox.readFile("mine.txt")).content).toBe("mine\n");
  });

  it("cannot see the app's real checkout either", async () => {
    const checkoutHere = appCheckout();
    expect(existsSync(path.join(checkoutHere, "sandbox", "local.ts"))).toBe(true);
    const box = await openFresh();
    try {
      const result = await box.exec(`ls -A ${checkoutHere}/sandbox`);
      expect(result.stdout).not.toContain("local.ts");
    } finally {
      await box.destroy();
    }
  });
});

describe("the command's home folder", () => {
  it("keeps npm's and other tools' files out of the workspace, and keeps them between commands", async () => {
    const sandbox = await openFresh();
    try {
      const npm = await sandbox.exec("npm --version && npm init -y > /dev/null && npm config get cache", {
        timeoutMs: 60_000,
      });
      expect(npm.exitCode, npm.stderr).toBe(0);
      expect(npm.stdout.trim().split("\n").at(-1)).toBe("/home/sandbox/.npm");
      expect((await sandbox.exec("echo $HOME && touch ~/.toolrc")).stdout).toBe("/home/sandbox\n");
      expect((await sandbox.exec("ls -A ~")).stdout).toContain(".toolrc");
      // Only the file npm init was asked to make.
      expect((await sandbox.exec("ls -A")).stdout).toBe("package.json\n");
      expect((await sandbox.listFiles()).files).toEqual(["package.json"]);
    } finally {
      await sandbox.destroy();
    }
  });

  it("is removed with the sandbox", async () => {
    const projectId = randomUUID();
    const sandbox = await openLocalSandbox({ dataDir, projectId });
    await sandbox.exec("touch ~/.cache-file");
    expect(existsSync(path.join(localHomePath(dataDir, projectId), ".cache-file"))).toBe(true);
    await sandbox.destroy();
    expect(existsSync(localHomePath(dataDir, projectId))).toBe(false);
  });
});

describe("local sandbox lifecycle", () => {
  it("keeps one workspace folder per project and reattaches to it", async () => {
    const projectId = randomUUID();
    const first = await openLocalSandbox({ dataDir, projectId });
    await first.writeFile("kept.txt", "still here");
    const again = await openLocalSandbox({ dataDir, projectId });
    expect(again.id).toBe(projectId);
    expect((await again.readFile("kept.txt")).content).toBe("still here");
    expect(await again.preview()).toEqual({
      kind: "directory",
      path: path.join(await realpath(dataDir), "workspaces", projectId),
    });
    await again.destroy();
    expect(existsSync(path.join(dataDir, "workspaces", projectId))).toBe(false);
    await first.destroy();
  });

  it("refuses project ids that are not safe folder names", async () => {
    for (const projectId of ["", "..", "../escape", "a/b", "a\\b", ".hidden", "x\0y", "a".repeat(200)]) {
      await expect(openLocalSandbox({ dataDir, projectId }), projectId).rejects.toBeInstanceOf(SandboxPathError);
    }
  });

  it("destroy kills a running command and removes even unreadable folders", async () => {
    const sandbox = await openFresh();
    await sandbox.exec("mkdir -p locked/inner && touch locked/inner/f && chmod 000 locked");
    const running = sandbox.exec("sleep 30");
    await sleep(300);
    await sandbox.destroy();
    expect((await running).aborted).toBe(true);
    expect(existsSync(path.join(dataDir, "workspaces", sandbox.id))).toBe(false);
    await expect(sandbox.exec("true")).rejects.toBeInstanceOf(SandboxUnavailableError);
  });
});

describe("when bubblewrap cannot be used", () => {
  it("exec explains that isolation is unavailable and what to do", async () => {
    const sandbox = await openLocalSandbox({ dataDir, projectId: randomUUID(), bwrapPath: "/nonexistent/bwrap" });
    try {
      const error = await sandbox.exec("true").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SandboxUnavailableError);
      const message = (error as Error).message;
      expect(message).toMatch(/Command isolation is unavailable/);
      expect(message).toContain("/nonexistent/bwrap does not exist");
      expect(message).toContain("bubblewrap");
      expect(message).toContain("LOCAL_SANDBOX_ISOLATION=none");
      // File tools do not need isolation.
      await sandbox.writeFile("a.txt", "fine");
      expect((await sandbox.readFile("a.txt")).content).toBe("fine");
    } finally {
      await sandbox.destroy();
    }
  });

  it("reports the probe's own error when bwrap fails to start", async () => {
    const fake = path.join(dataDir, "fake-bwrap");
    await writeFile(fake, "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n");
    await chmod(fake, 0o755);
    const check = await checkLocalIsolation({ bwrapPath: fake });
    expect(check.available).toBe(false);
    expect(check.reason).toContain("setting up uid map: Permission denied");
    expect(check.reason).toContain("exit 1");
  });

  it("finds no bwrap on a PATH without it, and finds the installed one here", async () => {
    expect(findBwrap("/nonexistent:/also/missing")).toBeUndefined();
    expect(findBwrap("/usr/bin")).toBe("/usr/bin/bwrap");
    expect(await checkLocalIsolation()).toMatchObject({ available: true });
  });
});
