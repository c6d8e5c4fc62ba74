/**
 * Runs one model action in the project's sandbox. Every outcome is a result
 * the model reads next, failures included: a bad path, a missing file or a
 * failing command is something for the model to fix, not a crashed run.
 */
import path from "node:path";
import type { Todo } from "../../db/schema";
import { countSandboxLimitHit } from "../../metrics/registry";
import {
  probeApp,
  SandboxFileError,
  SandboxPathError,
  SandboxUnavailableError,
  type AppLogLine,
  type AppStatus,
  type EgressRefusal,
  type ExecResult,
  type Sandbox,
} from "../../sandbox";
import type { AgentAction, AgentMode } from "./model/next-action";

export interface ToolLimits {
  commandTimeoutMs: number;
  maxOutputBytes: number;
  /** What commands may reach, for the hints in results. Unset: no network ("off"). */
  network?: NetworkReach;
}

export interface NetworkReach {
  mode: "registry" | "off";
  /** The hosts commands may reach, for people ("registry.npmjs.org", "pypi.org"), read when a hint is written. */
  hosts(): string[];
}

export interface ToolOutcome {
  ok: boolean;
  /** What the model reads. */
  content: string;
  /** One line for the builder. */
  summary: string;
  /** Workspace paths this action created or changed. */
  filesChanged: string[];
  todos?: Todo[];
  /** The builder stopped the run while this action ran. */
  stopped?: boolean;
  /** Connections the sandbox's egress policy refused while the command ran. */
  egressRefused?: EgressRefusal[];
}

const READ_ONLY = new Set(["read_file", "list_files", "app_logs", "reply_to_user"]);

/** Log lines a start_app result shows; app_logs shows DEFAULT_LOG_LINES unless asked, at most MAX_LOG_LINES. */
const START_LOG_LINES = 20;
const DEFAULT_LOG_LINES = 50;
const MAX_LOG_LINES = 200;
/** Files whose request makes a dev server compile them (Vite transforms these on request). */
const MODULE_FILE = /\.(m?[jt]sx?|vue|svelte|css|scss|less)$/;

function kib(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function oneLine(text: string, max = 100): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** The one-line description the builder sees while an action runs. */
export function describeAction(action: AgentAction): string {
  switch (action.tool) {
    case "write_file":
      return `Write ${action.path} (${kib(Buffer.byteLength(action.content))})`;
    case "read_file":
      return `Read ${action.path}`;
    case "list_files":
      return `List ${action.path || "the workspace"}`;
    case "run_command":
      return `Run \`${oneLine(action.command, 80)}\``;
    case "todo_write": {
      const done = action.todos.filter((t) => t.status === "completed").length;
      return `Update the todo list (${done}/${action.todos.length} done)`;
    }
    case "start_app":
      return action.command ? `Start the app: \`${oneLine(action.command, 70)}\`` : "Start the app";
    case "app_logs":
      return "Read the app's log";
    case "reply_to_user":
      return "Reply";
  }
}

/** "12:00:01 stderr: text", one per line. */
export function formatLogLines(lines: AppLogLine[]): string {
  return lines.map((line) => `${line.at.slice(11, 19)} ${line.stream}: ${line.text}`).join("\n");
}

/** The app's state in one sentence, for the model and the builder. */
export function describeAppStatus(status: AppStatus): string {
  const command = status.command ? ` (\`${status.command}\`)` : "";
  switch (status.state) {
    case "running":
      return `The app is running${command}, listening on port ${status.port}.`;
    case "starting":
      return `The app is still starting${command}: it does not listen on a port yet.`;
    case "crashed":
      return `The app is not running${command}: ${status.reason ?? "it crashed"}${status.nextRestartAt ? "; it restarts by itself shortly" : ""}.`;
    case "stopped":
      return `The app is stopped${command}${status.reason ? `: ${status.reason}` : ""}.`;
  }
}

async function startApp(
  sandbox: Sandbox,
  command: string | null | undefined,
  signal?: AbortSignal,
): Promise<ToolOutcome> {
  const before = (await sandbox.app.logs({ maxLines: 1 })).nextSeq;
  const status = await sandbox.app.restart({ ...(command ? { command } : {}), ...(signal ? { signal } : {}) });
  const { lines } = await sandbox.app.logs({ sinceSeq: before, maxLines: START_LOG_LINES });
  const ok = status.state === "running";
  const log = lines.length ? `\nIts log since this start:\n${formatLogLines(lines)}` : "";
  const summary =
    status.state === "running"
      ? `Running on port ${status.port}`
      : oneLine(`Not running: ${status.reason ?? status.state}`);
  return { ok, content: `${describeAppStatus(status)}${log}`, summary, filesChanged: [] };
}

async function appLogs(sandbox: Sandbox, requested: number | null | undefined): Promise<ToolOutcome> {
  const maxLines = Math.min(Math.max(Math.floor(requested ?? DEFAULT_LOG_LINES), 1), MAX_LOG_LINES);
  const [status, logs] = await Promise.all([sandbox.app.status(), sandbox.app.logs({ maxLines })]);
  const body = logs.lines.length ? formatLogLines(logs.lines) : "(the log is empty)";
  return {
    ok: true,
    content: `${describeAppStatus(status)}\n${logs.truncated ? "[… older lines not shown …]\n" : ""}${body}`,
    summary: `${logs.lines.length} log line${logs.lines.length === 1 ? "" : "s"}`,
    filesChanged: [],
  };
}

/** How long after a write the probe waits for the dev server to notice the change (its file watcher). */
const PROBE_SETTLE_MS = 2000;
const PROBE_RETRY_MS = 50;

/**
 * Before a module is rewritten while the app runs: the ETag of what the dev server compiled from it so far, or
 * undefined (not a module, no app, never compiled, no ETag, failing already).
 */
async function probeBeforeWrite(sandbox: Sandbox, requested: string): Promise<string | undefined> {
  // The path as the write will resolve it; anything outside the workspace the write refuses anyway.
  const filePath = path.posix.normalize(requested).replace(/^\/+/, "");
  if (!MODULE_FILE.test(filePath) || filePath.startsWith("..")) return undefined;
  const endpoint = await sandbox.app.endpoint().catch(() => null);
  if (!endpoint) return undefined;
  const probe = await probeApp(endpoint, `/${filePath}`);
  return probe?.status === 200 ? probe.etag : undefined;
}

/**
 * After a module is written while the app runs, asks the dev server for it, so it compiles now: a compile error
 * then shows up in this result (and the app's log), not only when a browser loads the page. A dev server answers
 * from what it compiled until its file watcher sees the change (Vite: tens of ms, more on a busy machine), so a
 * module it had compiled (`before`, its ETag) is asked for with If-None-Match until the answer is no longer 304,
 * for at most PROBE_SETTLE_MS: an immediate GET would get the old module's 200 and miss the error.
 */
async function probeWrittenModule(sandbox: Sandbox, filePath: string, before: string | undefined): Promise<string> {
  if (!MODULE_FILE.test(filePath)) return "";
  const endpoint = await sandbox.app.endpoint().catch(() => null);
  if (!endpoint) return "";
  const deadline = Date.now() + PROBE_SETTLE_MS;
  let probe = await probeApp(endpoint, `/${filePath}`, 5000, { ifNoneMatch: before });
  while (before && probe?.status === 304 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, PROBE_RETRY_MS));
    probe = await probeApp(endpoint, `/${filePath}`, 5000, { ifNoneMatch: before });
  }
  if (!probe || probe.status < 500) return "";
  return `\nThe running dev server failed to compile it (HTTP ${probe.status} for /${filePath}):\n${compileError(probe.excerpt)}`;
}

/**
 * The error in a dev server's error answer: Vite's page carries it as JSON (`const error = {…}`: message and code
 * frame); anything else is shown as text without its markup, cut short.
 */
export function compileError(body: string): string {
  const json = /const error = (\{.*\})\s*\n/.exec(body)?.[1];
  if (json) {
    try {
      const error = JSON.parse(json) as { message?: unknown; frame?: unknown };
      const parts = [error.message, error.frame].filter((part): part is string => typeof part === "string");
      if (parts.length) return parts.join("\n").trim().slice(0, 1500);
    } catch {
      // not Vite's shape after all
    }
  }
  const text = body
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, " ")
    .replace(/<[^>]+>/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  return text.slice(0, 1000);
}

/** Errors that mean a command tried to reach the network directly, which the sandbox does not allow. */
const NO_NETWORK =
  /\b(ENOTFOUND|EAI_AGAIN|ENETUNREACH|Could not resolve host|Temporary failure in name resolution|Network is unreachable)\b/;

function triedNetwork(result: ExecResult): boolean {
  return result.exitCode !== 0 && NO_NETWORK.test(`${result.stderr}\n${result.stdout}`);
}

const MAX_REFUSALS_SHOWN = 5;

function refusalList(refused: EgressRefusal[]): string {
  const shown = refused.slice(0, MAX_REFUSALS_SHOWN).map((r) => `${r.host}:${r.port} (${r.reason})`);
  const more = refused.length > MAX_REFUSALS_SHOWN ? ` and ${refused.length - MAX_REFUSALS_SHOWN} more` : "";
  return `${shown.join(", ")}${more}`;
}

function reachable(network: NetworkReach): string {
  const hosts = network.hosts();
  return hosts.length ? hosts.join(", ") : "the package registry";
}

/**
 * Why the network failed the command, for the model: which connections were refused and what the sandbox may
 * reach; or, when nothing reached the proxy (a raw socket, a tool that ignores HTTPS_PROXY), what it may reach.
 */
function networkHint(result: ExecResult, network: NetworkReach | undefined): string | undefined {
  const refused = result.egressRefused ?? [];
  if (network?.mode === "registry") {
    if (refused.length) return `(the sandbox may only reach ${reachable(network)}; refused: ${refusalList(refused)})`;
    if (triedNetwork(result)) {
      return (
        `(the sandbox may only reach ${reachable(network)}, through the HTTP proxy set in HTTPS_PROXY: ` +
        "npm install works; other hosts, raw TCP/UDP and tools that ignore the proxy variables fail)"
      );
    }
    return undefined;
  }
  if (triedNetwork(result)) {
    return "(the sandbox has no network: commands cannot download packages or reach other hosts)";
  }
  return undefined;
}

/** What a resource limit did to the command, for the model and the builder: "memory limit (1 GiB) reached". */
function limitReached(result: ExecResult): string | undefined {
  if (!result.limit) return undefined;
  const amount = result.limitAmount ? ` (${result.limitAmount})` : "";
  const name = { memory: "memory", processes: "process", disk: "disk", cpu: "CPU" }[result.limit];
  return result.limit === "cpu" ? `held back by its CPU limit${amount}` : `${name} limit${amount} reached`;
}

function formatExec(command: string, result: ExecResult, network: NetworkReach | undefined): string {
  const limit = limitReached(result);
  const status = result.timedOut
    ? `timed out and was killed${limit ? `, ${limit}` : ""}`
    : result.aborted
      ? "was killed because the builder stopped the run"
      : limit
        ? `was killed: ${limit}`
        : `exited with code ${result.exitCode}`;
  const parts = [`$ ${command}`, `(${status} after ${(result.durationMs / 1000).toFixed(1)} s)`];
  if (result.stdout) parts.push(`stdout:\n${result.stdout}`);
  if (result.stderr) parts.push(`stderr:\n${result.stderr}`);
  if (result.truncated) parts.push("(output was truncated)");
  const hint = networkHint(result, network);
  if (hint) parts.push(hint);
  return parts.join("\n");
}

/** The run_command step's one-line result for the builder. */
function execSummary(result: ExecResult, network: NetworkReach | undefined): string {
  const limit = limitReached(result);
  if (result.timedOut) return limit ? `Timed out, ${limit}` : "Timed out and killed";
  if (result.aborted) return "Killed (run stopped)";
  if (limit) return `Killed: ${limit}`;
  const refused = result.egressRefused ?? [];
  if (refused.length) {
    const first = refused[0]!;
    const more = refused.length > 1 ? ` and ${refused.length - 1} more` : "";
    return `Exit code ${result.exitCode}; refused ${first.host}:${first.port}${more} (not allowed from the sandbox)`;
  }
  if (triedNetwork(result) && network?.mode !== "registry") {
    return `Exit code ${result.exitCode}: the sandbox has no network`;
  }
  return `Exit code ${result.exitCode}`;
}

async function fileSet(sandbox: Sandbox): Promise<Set<string>> {
  try {
    return new Set((await sandbox.listFiles()).files);
  } catch {
    return new Set();
  }
}

export async function runTool(
  sandbox: Sandbox,
  action: AgentAction,
  { mode, signal, limits }: { mode: AgentMode; signal?: AbortSignal; limits: ToolLimits },
): Promise<ToolOutcome> {
  const none = { filesChanged: [] as string[] };
  // Any tool the agent runs is activity: the app process's idle timer starts over.
  sandbox.app.touch();
  if (mode === "ask" && !READ_ONLY.has(action.tool)) {
    return {
      ok: false,
      content: `${action.tool} is not available in ask mode: answer with read_file, list_files and reply_to_user only.`,
      summary: `${action.tool} refused (ask mode is read-only)`,
      ...none,
    };
  }
  try {
    switch (action.tool) {
      case "write_file": {
        const before = await probeBeforeWrite(sandbox, action.path);
        const written = await sandbox.writeFile(action.path, action.content);
        const compiled = await probeWrittenModule(sandbox, written.path, before);
        return {
          ok: true,
          content: `${written.created ? "Created" : "Updated"} ${written.path} (${written.bytes} bytes).${compiled}`,
          summary: `${written.created ? "Created" : "Updated"} ${written.path}`,
          filesChanged: [written.path],
        };
      }
      case "read_file": {
        const file = await sandbox.readFile(action.path);
        if (file.binary) {
          return {
            ok: true,
            content: `${file.path}: binary file, ${file.bytes} bytes, type ${file.binary.mime}. Its content cannot be shown as text.`,
            summary: `Read ${file.path} (binary, ${file.binary.mime}, ${kib(file.bytes)})`,
            ...none,
          };
        }
        const notes = [
          file.invalidUtf8 ? "[bytes that are not valid UTF-8 are shown as \uFFFD]" : "",
          file.truncated ? `[… truncated: the file has ${file.bytes} bytes …]` : "",
        ].filter(Boolean);
        const note = notes.length ? `\n${notes.join("\n")}` : "";
        return {
          ok: true,
          content: `${file.path}:\n${file.content}${note}`,
          summary: `Read ${file.path} (${kib(file.bytes)})`,
          ...none,
        };
      }
      case "list_files": {
        const list = await sandbox.listFiles(action.path ?? undefined);
        const body = list.files.length ? list.files.join("\n") : "(no files)";
        return {
          ok: true,
          content: `${body}${list.truncated ? "\n[… more files not listed …]" : ""}`,
          summary: `${list.files.length} file${list.files.length === 1 ? "" : "s"}`,
          ...none,
        };
      }
      case "run_command": {
        const before = await fileSet(sandbox);
        const requested = action.timeout_seconds ? action.timeout_seconds * 1000 : limits.commandTimeoutMs;
        const result = await sandbox.exec(action.command, {
          timeoutMs: Math.min(Math.max(requested, 1000), limits.commandTimeoutMs),
          maxOutputBytes: limits.maxOutputBytes,
          signal,
        });
        const after = await fileSet(sandbox);
        const created = [...after].filter((path) => !before.has(path));
        const ok = result.exitCode === 0 && !result.timedOut && !result.aborted && !result.limit;
        if (result.limit || result.timedOut) countSandboxLimitHit(result.limit ?? "timeout", "command");
        return {
          ok,
          content: formatExec(action.command, result, limits.network),
          summary: execSummary(result, limits.network),
          filesChanged: created,
          stopped: result.aborted,
          ...(result.egressRefused?.length && { egressRefused: result.egressRefused }),
        };
      }
      case "todo_write": {
        const todos = action.todos.map((t) => ({ id: t.id, content: t.content, status: t.status }));
        return { ok: true, content: "Todo list updated.", summary: describeAction(action), todos, ...none };
      }
      case "start_app":
        return await startApp(sandbox, action.command, signal);
      case "app_logs":
        return await appLogs(sandbox, action.lines);
      case "reply_to_user":
        // Replies end the loop before act; reaching here is a bug in the caller.
        throw new Error("reply_to_user is not a tool to run");
    }
  } catch (error) {
    if (
      error instanceof SandboxPathError ||
      error instanceof SandboxFileError ||
      error instanceof SandboxUnavailableError ||
      // start_app's command refused (empty, a NUL byte, too long).
      error instanceof RangeError
    ) {
      return { ok: false, content: `Error: ${error.message}`, summary: oneLine(error.message), ...none };
    }
    throw error;
  }
}
