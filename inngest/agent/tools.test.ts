import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeEgressProxies, openLocalSandbox, reachableHosts, type Sandbox } from "../../sandbox";
import { describeAction, runTool } from "./tools";

let dataDir: string;
let sandbox: Sandbox;
const limits = { commandTimeoutMs: 5_000, maxOutputBytes: 4096 };

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-tools-"));
  sandbox = await openLocalSandbox({ dataDir, projectId: randomUUID() });
});

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("runTool", () => {
  it("refuses changes in ask mode and changes nothing", async () => {
    const outcome = await runTool(
      sandbox,
      { tool: "write_file", path: "x.txt", content: "x" },
      { mode: "ask", limits },
    );
    expect(outcome).toMatchObject({ ok: false, filesChanged: [] });
    expect(outcome.content).toMatch(/not available in ask mode/);
    expect((await sandbox.listFiles()).files).not.toContain("x.txt");
  });

  it("reports files a command created, and a failing command as a failed result", async () => {
    const made = await runTool(
      sandbox,
      { tool: "run_command", command: "mkdir -p src && echo hi > src/new.txt" },
      { mode: "build", limits },
    );
    expect(made).toMatchObject({ ok: true, summary: "Exit code 0", filesChanged: ["src/new.txt"] });
    const failed = await runTool(
      sandbox,
      { tool: "run_command", command: "echo oops >&2; exit 4" },
      { mode: "build", limits },
    );
    expect(failed).toMatchObject({ ok: false, summary: "Exit code 4" });
    expect(failed.content).toMatch(/exited with code 4[\s\S]*stderr:\noops/);
  });

  it("turns a hostile path into an error result, not an exception", async () => {
    const outcome = await runTool(
      sandbox,
      { tool: "write_file", path: "../../../x", content: "x" },
      { mode: "build", limits },
    );
    expect(outcome.ok).toBe(false);
    expect(outcome.content).toMatch(/^Error: /);
    expect(existsSync(path.join(dataDir, "x"))).toBe(false);
  });

  it("marks a command killed by a stop as stopped", async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort("stopped"), 200);
    const outcome = await runTool(
      sandbox,
      { tool: "run_command", command: "sleep 30" },
      { mode: "build", limits, signal: stop.signal },
    );
    expect(outcome).toMatchObject({ ok: false, stopped: true, summary: "Killed (run stopped)" });
  });
});

describe("run_command under the sandbox's limits", () => {
  let limited: Sandbox;
  beforeAll(async () => {
    limited = await openLocalSandbox({
      dataDir,
      projectId: randomUUID(),
      limits: { memoryBytes: 64 * 1024 * 1024, processes: 32, cpuCores: 0.5, diskBytes: 32 * 1024 * 1024 },
    });
  });
  afterAll(() => limited?.destroy());

  it("names the limit that killed a command, and the next command runs", async () => {
    const hog = `node -e "const a = []; setInterval(() => a.push(Buffer.alloc(4e6, 1)), 5)"`;
    const outcome = await runTool(limited, { tool: "run_command", command: hog }, { mode: "build", limits });
    expect(outcome).toMatchObject({ ok: false, summary: "Killed: memory limit (64 MiB) reached" });
    expect(outcome.content).toMatch(/was killed: memory limit \(64 MiB\) reached/);
    const filler = await runTool(
      limited,
      { tool: "run_command", command: "head -c 100000000 /dev/zero > fill" },
      { mode: "build", limits },
    );
    expect(filler).toMatchObject({ ok: false, summary: "Killed: disk limit (32 MiB) reached" });
    const bomb = "f() { if [ $1 -gt 0 ]; then f $(($1 - 1)) & f $(($1 - 1)); wait; else sleep 20; fi; }; f 7";
    const forks = await runTool(limited, { tool: "run_command", command: bomb }, { mode: "build", limits });
    expect(forks).toMatchObject({ ok: false, summary: "Killed: process limit (32 processes) reached" });
    expect(
      await runTool(limited, { tool: "run_command", command: "rm fill; echo fine" }, { mode: "build", limits }),
    ).toMatchObject({
      ok: true,
      summary: "Exit code 0",
    });
  });

  it("says when a command failed for lack of network", async () => {
    const lookup = `node -e "require('dns').lookup('registry.npmjs.org', (e) => { console.error(e && e.code); process.exit(1) })"`;
    const outcome = await runTool(limited, { tool: "run_command", command: lookup }, { mode: "build", limits });
    expect(outcome).toMatchObject({ ok: false, summary: "Exit code 1: the sandbox has no network" });
    expect(outcome.content).toMatch(/the sandbox has no network/);
  });
});

describe("runTool with the egress policy on", () => {
  let connected: Sandbox;
  const egress = { mode: "registry" as const, registryUrl: "https://registry.npmjs.org/" };
  const network = { mode: "registry" as const, hosts: () => reachableHosts(egress) };

  beforeAll(async () => {
    connected = await openLocalSandbox({ dataDir, projectId: randomUUID(), egress });
  });
  afterAll(async () => {
    await connected?.destroy();
    await closeEgressProxies();
  });

  it("names the refused connection and what the sandbox may reach, in the result and its summary", async () => {
    const outcome = await runTool(
      connected,
      { tool: "run_command", command: "curl -sS -m 5 https://example.com/ -o /dev/null" },
      { mode: "build", limits: { ...limits, network } },
    );
    expect(outcome).toMatchObject({
      ok: false,
      summary: "Exit code 56; refused example.com:443 (not allowed from the sandbox)",
      egressRefused: [{ host: "example.com", port: 443, reason: "not on the allow-list" }],
    });
    expect(outcome.content).toMatch(
      /\(the sandbox may only reach registry\.npmjs\.org; refused: example\.com:443 \(not on the allow-list\)\)$/,
    );
  });

  it("says what the sandbox may reach when a connection never reached the proxy (raw sockets)", async () => {
    const raw = `node -e "require('net').connect(443, '104.16.0.35').on('error', (e) => { console.error(e.code); process.exit(1) })"`;
    const outcome = await runTool(
      connected,
      { tool: "run_command", command: raw },
      { mode: "build", limits: { ...limits, network } },
    );
    expect(outcome).toMatchObject({ ok: false, summary: "Exit code 1" });
    expect(outcome.egressRefused).toBeUndefined();
    expect(outcome.content).toMatch(
      /ENETUNREACH[\s\S]*the sandbox may only reach registry\.npmjs\.org, through the HTTP proxy/,
    );
  });
});

describe("describeAction", () => {
  it("says in one line what an action does", () => {
    expect(describeAction({ tool: "write_file", path: "index.html", content: "x".repeat(2048) })).toBe(
      "Write index.html (2.0 KiB)",
    );
    expect(describeAction({ tool: "run_command", command: "npm test\n  --silent" })).toBe("Run `npm test --silent`");
    expect(
      describeAction({
        tool: "todo_write",
        todos: [
          { id: "1", content: "a", status: "completed" },
          { id: "2", content: "b", status: "pending" },
        ],
      }),
    ).toBe("Update the todo list (1/2 done)");
  });
});
