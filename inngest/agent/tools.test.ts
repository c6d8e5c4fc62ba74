import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeEgressProxies, openLocalSandbox, reachableHosts, type Sandbox } from "../../sandbox";
import { compileError, describeAction, runTool } from "./tools";

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

describe("start_app and app_logs", () => {
  let app: Sandbox;
  beforeAll(async () => {
    app = await openLocalSandbox({ dataDir, projectId: randomUUID() });
  });
  afterAll(() => app?.destroy());

  // Answers 500 with a compile error for anything under /src/broken, as Vite does for a module that does not compile.
  const server = [
    `require("http").createServer((req, res) => {`,
    `  if (req.url.startsWith("/src/broken")) { res.statusCode = 500; console.error("[vite] Internal server error: Unexpected token"); return res.end("SyntaxError: Unexpected token (1:4)"); }`,
    `  res.end("ok");`,
    `}).listen(5173, () => console.log("ready"));`,
  ].join("\n");

  it("starts the app and says where it listens, with its log", async () => {
    await app.writeFile("server.js", server);
    await app.writeFile("package.json", JSON.stringify({ scripts: { dev: "node server.js" } }));
    const outcome = await runTool(app, { tool: "start_app" }, { mode: "build", limits });
    expect(outcome).toMatchObject({ ok: true, summary: "Running on port 5173", filesChanged: [] });
    expect(outcome.content).toMatch(/^The app is running \(`npm run dev`\), listening on port 5173\./);
    expect(outcome.content).toMatch(/system: listening on port 5173/);
  });

  it("asks the dev server for a module it just wrote, so a compile error shows at once", async () => {
    const broken = await runTool(
      app,
      { tool: "write_file", path: "src/broken.js", content: "let = ;" },
      { mode: "build", limits },
    );
    expect(broken.ok).toBe(true);
    expect(broken.content).toMatch(
      /failed to compile it \(HTTP 500 for \/src\/broken\.js\):\nSyntaxError: Unexpected token/,
    );
    const fine = await runTool(
      app,
      { tool: "write_file", path: "src/fine.js", content: "export {}" },
      { mode: "build", limits },
    );
    expect(fine.content).toBe("Created src/fine.js (9 bytes).");
  });

  it("reads the app's log, in ask mode too", async () => {
    const outcome = await runTool(app, { tool: "app_logs", lines: 5 }, { mode: "ask", limits });
    expect(outcome).toMatchObject({ ok: true, summary: "5 log lines" });
    expect(outcome.content).toMatch(/stderr: \[vite\] Internal server error: Unexpected token/);
  });

  it("says why a start failed", async () => {
    const outcome = await runTool(app, { tool: "start_app", command: "node nowhere.js" }, { mode: "build", limits });
    expect(outcome).toMatchObject({
      ok: false,
      summary: "Not running: exited with code 1 before it listened on a port",
    });
    expect(outcome.content).toMatch(
      /^The app is not running \(`node nowhere.js`\): exited with code 1 before it listened on a port\./,
    );
    expect(outcome.content).toMatch(/stderr: .*Cannot find module/);
    const refused = await runTool(app, { tool: "start_app" }, { mode: "ask", limits });
    expect(refused).toMatchObject({ ok: false, summary: "start_app refused (ask mode is read-only)" });
  });
});

describe("the probe after a write, against a dev server that caches what it compiled", () => {
  let app: Sandbox;
  beforeAll(async () => {
    app = await openLocalSandbox({ dataDir, projectId: randomUUID() });
  });
  afterAll(() => app?.destroy());

  // As Vite does: a module is compiled once and answered from that (ETag, 304 to If-None-Match) until the file
  // watcher says it changed; here the watcher takes 300 ms, as Vite's can on a busy machine. A module that does not
  // compile is a 500 and is not kept.
  const server = [
    `const fs = require("fs");`,
    `const compiled = new Map();`,
    `let version = 0;`,
    `fs.mkdirSync("src", { recursive: true });`,
    `fs.watch("src", (_event, name) => setTimeout(() => compiled.delete("/src/" + name), 300));`,
    `require("http").createServer((req, res) => {`,
    `  let module = compiled.get(req.url);`,
    `  if (!module) {`,
    `    let source;`,
    `    try { source = fs.readFileSync("." + req.url, "utf8"); } catch { res.statusCode = 404; return res.end(); }`,
    `    if (source.includes("let = ;")) { res.statusCode = 500; console.error("[vite] Internal server error: Unexpected token"); return res.end("SyntaxError: Unexpected token (1:4)"); }`,
    `    module = { etag: 'W/"' + ++version + '"', code: source };`,
    `    compiled.set(req.url, module);`,
    `  }`,
    `  if (req.headers["if-none-match"] === module.etag) { res.statusCode = 304; return res.end(); }`,
    `  res.setHeader("ETag", module.etag);`,
    `  res.end(module.code);`,
    `}).listen(5173, () => console.log("ready"));`,
  ].join("\n");

  it("reports the compile error of a module it had compiled before, not the old module's 200", async () => {
    await app.writeFile("server.js", server);
    await app.writeFile("package.json", JSON.stringify({ scripts: { dev: "node server.js" } }));
    expect(await runTool(app, { tool: "start_app" }, { mode: "build", limits })).toMatchObject({ ok: true });

    const first = await runTool(
      app,
      { tool: "write_file", path: "src/cached.js", content: "export const a = 1;" },
      { mode: "build", limits },
    );
    expect(first.content).toBe("Created src/cached.js (19 bytes).");
    const broken = await runTool(
      app,
      { tool: "write_file", path: "src/cached.js", content: "let = ;" },
      { mode: "build", limits },
    );
    expect(broken.content).toMatch(
      /^Updated src\/cached\.js \(7 bytes\)\.\nThe running dev server failed to compile it \(HTTP 500 for \/src\/cached\.js\)/,
    );
    const fixed = await runTool(
      app,
      { tool: "write_file", path: "src/cached.js", content: "export const a = 2;" },
      { mode: "build", limits },
    );
    expect(fixed.content).toBe("Updated src/cached.js (19 bytes).");
    // A good module rewritten: compiled anew, no error.
    const again = await runTool(
      app,
      { tool: "write_file", path: "./src/cached.js", content: "export const a = 3;" },
      { mode: "build", limits },
    );
    expect(again.content).toBe("Updated src/cached.js (19 bytes).");
  });
});

describe("compileError", () => {
  it("reads the message and code frame from Vite's error page, and strips other pages to text", () => {
    const error = {
      message:
        'Transform failed with 1 error:\n/workspace/src/App.jsx:1:16: ERROR: Unexpected end of file before a closing "div" tag',
      stack: "    at failureErrorWithLog (/workspace/node_modules/esbuild/lib/main.js:1472:15)",
      frame: "\n1  |  const x = <div>;\n   |                  ^\n",
    };
    const vite = `<!DOCTYPE html>\n<html><head><title>Error</title>\n<script type="module">\n  const error = ${JSON.stringify(error)}\n  try {} catch {}\n</script></head></html>`;
    expect(compileError(vite)).toBe(`${error.message}\n${error.frame}`.trim());
    expect(compileError("<html><body><h1>Internal Server Error</h1><p>boom</p></body></html>")).toBe(
      "Internal Server Error boom",
    );
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
