/**
 * The behaviour every sandbox provider must have, as vitest tests. A
 * provider's test file calls describeSandboxContract with a function that
 * opens a fresh, empty sandbox. The tests share that one sandbox (a Modal
 * sandbox takes seconds to start), each in files of its own, and destroy it
 * last.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareListedPaths } from "./paths";
import { SandboxFileError, SandboxPathError, type Sandbox } from "./types";

/** Generous bounds for "returns promptly": they catch a hang, not slowness. */
const PROMPT_RETURN_MS = 10_000;

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function exists(sandbox: Sandbox, path: string): Promise<boolean> {
  try {
    await sandbox.readFile(path);
    return true;
  } catch (error) {
    if (error instanceof SandboxFileError) return false;
    throw error;
  }
}

export function describeSandboxContract(name: string, open: () => Promise<Sandbox>): void {
  describe(`sandbox contract: ${name}`, () => {
    let sandbox: Sandbox;

    beforeAll(async () => {
      sandbox = await open();
    });

    afterAll(async () => {
      await sandbox?.destroy();
    });

    it("writes and reads back unicode text", async () => {
      const content = "héllo wörld — ✓ 🚀\nzweite Zeile\n";
      const first = await sandbox.writeFile("unicode/ünï.txt", content);
      expect(first).toEqual({ path: "unicode/ünï.txt", bytes: Buffer.byteLength(content), created: true });
      const read = await sandbox.readFile("unicode/ünï.txt");
      expect(read).toEqual({ path: "unicode/ünï.txt", content, bytes: Buffer.byteLength(content), truncated: false });

      const second = await sandbox.writeFile("unicode/ünï.txt", "short");
      expect(second.created).toBe(false);
      expect((await sandbox.readFile("unicode/ünï.txt")).content).toBe("short");
    });

    it("creates missing parent folders on write", async () => {
      await sandbox.writeFile("deep/a/b/c/file.txt", "x");
      expect((await sandbox.listFiles("deep")).files).toEqual(["deep/a/b/c/file.txt"]);
      expect((await sandbox.readFile("deep/a/b/c/file.txt")).content).toBe("x");
    });

    it("truncates long reads at maxBytes on a character boundary", async () => {
      await sandbox.writeFile("long/accents.txt", "é".repeat(1000));
      const read = await sandbox.readFile("long/accents.txt", { maxBytes: 1001 });
      expect(read.truncated).toBe(true);
      expect(read.bytes).toBe(2000);
      expect(read.content).toBe("é".repeat(500));
    });

    it("refuses to write more than 1 MiB, or onto a folder", async () => {
      await expect(sandbox.writeFile("big.txt", "x".repeat(1024 * 1024 + 1))).rejects.toBeInstanceOf(SandboxFileError);
      await sandbox.writeFile("folder/inside.txt", "x");
      await expect(sandbox.writeFile("folder", "x")).rejects.toBeInstanceOf(SandboxFileError);
      await expect(sandbox.readFile("folder")).rejects.toBeInstanceOf(SandboxFileError);
    });

    it("lists files recursively in tree order, skipping node_modules and .git", async () => {
      for (const file of [
        "b.txt",
        "a.txt",
        "a/z.txt",
        "src/.hidden",
        "node_modules/pkg/index.js",
        ".git/HEAD",
        "src/node_modules/x.js",
      ]) {
        await sandbox.writeFile(`list/${file}`, file);
      }
      const listing = await sandbox.listFiles("list");
      expect(listing).toEqual({
        files: ["list/a/z.txt", "list/a.txt", "list/b.txt", "list/src/.hidden"],
        truncated: false,
      });
      expect([...listing.files].sort(compareListedPaths)).toEqual(listing.files);

      const whole = await sandbox.listFiles();
      expect(whole.files).toContain("list/a.txt");
      expect(whole.files.some((file) => file.includes("node_modules/") || file.includes(".git/"))).toBe(false);
      expect([...whole.files].sort(compareListedPaths)).toEqual(whole.files);

      expect(await sandbox.listFiles("/list/", { maxEntries: 2 })).toEqual({
        files: ["list/a/z.txt", "list/a.txt"],
        truncated: true,
      });
    });

    it("reports missing files and folders as SandboxFileError", async () => {
      await expect(sandbox.readFile("no/such/file.txt")).rejects.toBeInstanceOf(SandboxFileError);
      await expect(sandbox.listFiles("no-such-folder")).rejects.toBeInstanceOf(SandboxFileError);
      await expect(sandbox.readFile("")).rejects.toBeInstanceOf(SandboxFileError);
    });

    it("refuses paths that leave the workspace", async () => {
      for (const path of ["../x", "../../etc/passwd", "a/../../x", "..\\..\\x", "/../x", "~/x", "a\0b"]) {
        await expect(sandbox.readFile(path), path).rejects.toBeInstanceOf(SandboxPathError);
        await expect(sandbox.writeFile(path, "x"), path).rejects.toBeInstanceOf(SandboxPathError);
        await expect(sandbox.listFiles(path), path).rejects.toBeInstanceOf(SandboxPathError);
      }
    });

    it("treats an absolute path as relative to the workspace root", async () => {
      await expect(sandbox.readFile("/etc/passwd")).rejects.toBeInstanceOf(SandboxFileError);
      const written = await sandbox.writeFile("/etc/dyno-contract.txt", "inside");
      expect(written.path).toBe("etc/dyno-contract.txt");
      const result = await sandbox.exec("cat etc/dyno-contract.txt");
      expect(result.stdout).toBe("inside");
      expect((await sandbox.readFile("etc/../etc/dyno-contract.txt")).content).toBe("inside");
    });

    it("runs commands with their exit code, stdout and stderr", async () => {
      const result = await sandbox.exec("echo out; echo err >&2; exit 3");
      expect(result).toMatchObject({
        exitCode: 3,
        stdout: "out\n",
        stderr: "err\n",
        truncated: false,
        timedOut: false,
        aborted: false,
      });
      expect(result.durationMs).toBeGreaterThanOrEqual(0);
      expect((await sandbox.exec("true")).exitCode).toBe(0);
    });

    it("shares files between commands and the file tools", async () => {
      await sandbox.writeFile("shared/from-tool.txt", "hello from the tool");
      const result = await sandbox.exec("cat shared/from-tool.txt && echo made by a command > shared/from-cmd.txt");
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe("hello from the tool");
      expect((await sandbox.readFile("shared/from-cmd.txt")).content).toBe("made by a command\n");
      expect((await sandbox.listFiles("shared")).files).toEqual(["shared/from-cmd.txt", "shared/from-tool.txt"]);
    });

    it("refuses a command it cannot run instead of throwing", async () => {
      const result = await sandbox.exec("echo a\0b");
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(/NUL/);
    });

    it("caps output, keeping the head and the tail", async () => {
      const result = await sandbox.exec(
        "echo START; head -c 1000000 /dev/zero | tr '\\0' a; echo; echo END; echo small >&2",
        {
          maxOutputBytes: 4096,
        },
      );
      expect(result.exitCode).toBe(0);
      expect(result.truncated).toBe(true);
      expect(Buffer.byteLength(result.stdout)).toBeLessThan(4096 + 100);
      expect(result.stdout.startsWith("START\naaaa")).toBe(true);
      expect(result.stdout.endsWith("aaaa\nEND\n")).toBe(true);
      expect(result.stdout).toMatch(/\[… \d+ bytes omitted …\]/);
      expect(result.stderr).toBe("small\n");
    });

    it("kills a command that outlives its timeout", async () => {
      const started = Date.now();
      const result = await sandbox.exec("sleep 30 & wait", { timeoutMs: 500 });
      expect(Date.now() - started).toBeLessThan(PROMPT_RETURN_MS);
      expect(result).toMatchObject({ exitCode: null, timedOut: true, aborted: false });
    });

    it("returns at once, running nothing, when the signal is already aborted", async () => {
      const result = await sandbox.exec("echo ran > ran.txt", { signal: AbortSignal.abort() });
      expect(result).toMatchObject({ exitCode: null, aborted: true, timedOut: false });
      expect(await exists(sandbox, "ran.txt")).toBe(false);
    });

    it("kills a command and its background children on abort", async () => {
      const controller = new AbortController();
      const started = Date.now();
      const running = sandbox.exec("echo started > abort-started.txt; (sleep 2; echo late > late.txt) & sleep 30", {
        signal: controller.signal,
      });
      await waitFor(() => exists(sandbox, "abort-started.txt"), PROMPT_RETURN_MS);
      controller.abort();
      const result = await running;
      expect(Date.now() - started).toBeLessThan(2 * PROMPT_RETURN_MS);
      expect(result).toMatchObject({ exitCode: null, aborted: true, timedOut: false });
      // The background child would have written late.txt 2 s after it started.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(await exists(sandbox, "late.txt")).toBe(false);
    });

    it("can be destroyed more than once", async () => {
      await sandbox.destroy();
      await expect(sandbox.destroy()).resolves.toBeUndefined();
    });
  });
}
