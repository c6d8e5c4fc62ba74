/**
 * The Logs view's logic, browser-safe: the bounded buffer of lines the page
 * keeps, the words for the app's state, and what "Fix this" sends the agent
 * when the app crashed or the page threw errors in the browser.
 */
import type { AppLogLine, AppLogStatus, AppState } from "../models/app-log";

/** Lines the page keeps (and renders): the newest win. */
export const MAX_PAGE_LINES = 1000;
/** The whole "Fix this" prompt, error text included, stays under this (a prompt may have 20,000). */
export const FIX_PROMPT_MAX_CHARS = 4000;
/** Log lines a crash's prompt quotes at most (the end of the log). */
export const FIX_CRASH_LINES = 40;
/** Browser errors a prompt quotes at most (the newest). */
export const FIX_BROWSER_LINES = 10;
/** A start's first lines may carry a time a little before startedAt (written by another process): allow this much. */
const START_SLACK_MS = 1000;
/** Characters of one quoted line. */
const FIX_LINE_CHARS = 600;

export interface AppLogBuffer {
  lines: AppLogLine[];
  /** The newest seq held; later batches start after it. null: nothing yet. */
  lastSeq: number | null;
  /** Older lines exist that the buffer does not hold (dropped by a bound here or on the server). */
  truncated: boolean;
}

export function emptyBuffer(): AppLogBuffer {
  return { lines: [], lastSeq: null, truncated: false };
}

/**
 * Adds a batch: lines already held (a reconnect overlaps) are skipped, and
 * past `max` the oldest go. `gap` marks lines the server could not send.
 */
export function appendLines(
  buffer: AppLogBuffer,
  incoming: AppLogLine[],
  gap = false,
  max = MAX_PAGE_LINES,
): AppLogBuffer {
  const fresh = incoming.filter((line) => buffer.lastSeq === null || line.seq > buffer.lastSeq);
  if (fresh.length === 0) return buffer;
  const all = buffer.lines.concat(fresh);
  const lines = all.length > max ? all.slice(-max) : all;
  return {
    lines,
    lastSeq: fresh.at(-1)!.seq,
    truncated: buffer.truncated || gap || all.length > max,
  };
}

const STATE_LABELS: Record<AppState, string> = {
  starting: "Starting",
  running: "Running",
  crashed: "Crashed",
  stopped: "Stopped",
};

export function appStateLabel(state: AppState): string {
  return STATE_LABELS[state];
}

/** One line under the badge: what runs, and why it is crashed or stopped. */
export function appStateDetail(status: AppLogStatus): string | null {
  if (status.state === "crashed" && status.nextRestartAt) {
    return `${status.reason ?? "It exited"}; restarting on its own (attempt ${status.restarts + 1}).`;
  }
  if (status.state === "crashed" || status.state === "stopped") return status.reason;
  if (status.state === "starting") return status.command ? `Starting ${status.command}…` : "Starting…";
  return status.port ? `Listening on port ${status.port}.` : null;
}

/** What "Fix this" is about: the app crashed, or the page threw errors in the browser. */
export interface AppProblem {
  kind: "crash" | "browser";
  /** One line for the button's surroundings: "The app crashed: exited with code 1". */
  title: string;
  /** The lines quoted in the prompt. */
  lines: AppLogLine[];
  /** The newest seq it covers: after a Fix this, problems up to here are not offered again. */
  upToSeq: number;
}

/**
 * The problem worth a "Fix this", if any. A crash wins over browser errors
 * (the page cannot run without the app) and quotes the end of what the
 * last start printed. Browser errors count from the current start of the app
 * and after `handledSeq` (what a Fix this already sent), so an old error is
 * not offered again once handled.
 */
export function appProblem(status: AppLogStatus, lines: AppLogLine[], handledSeq: number | null): AppProblem | null {
  const last = lines.at(-1);
  const since = status.startedAt ? Date.parse(status.startedAt) - START_SLACK_MS : Number.NEGATIVE_INFINITY;
  const sinceStart = (line: AppLogLine) => !(Date.parse(line.at) < since);
  if (status.state === "crashed") {
    // What the process said in its last start (the lines before it are another run's); all kept lines if none.
    const output = lines.filter((line) => line.stream !== "browser");
    const current = output.filter(sinceStart);
    const quoted = (current.length > 0 ? current : output).slice(-FIX_CRASH_LINES);
    return {
      kind: "crash",
      title: `The app crashed${status.reason ? `: ${status.reason}` : ""}`,
      lines: quoted,
      upToSeq: last?.seq ?? -1,
    };
  }
  const errors = lines.filter(
    (line) => line.stream === "browser" && (handledSeq === null || line.seq > handledSeq) && sinceStart(line),
  );
  if (errors.length === 0) return null;
  // An indented line ("    at f (…)") continues the error above it (its stack), it is not another error.
  const count = Math.max(1, errors.filter((line) => !/^\s/.test(line.text)).length);
  return {
    kind: "browser",
    title: count === 1 ? "The page threw an error in the browser" : `The page threw ${count} errors in the browser`,
    lines: errors.slice(-FIX_BROWSER_LINES),
    upToSeq: errors.at(-1)!.seq,
  };
}

/**
 * The prompt "Fix this" sends: what went wrong and the lines that show it,
 * cut so the whole stays under FIX_PROMPT_MAX_CHARS (the newest lines kept:
 * the end of a crash's log says most).
 */
export function fixPrompt(problem: AppProblem, command: string | null = null): string {
  const head =
    problem.kind === "crash"
      ? `The app${command ? ` (\`${command}\`)` : ""} crashed${problem.title.startsWith("The app crashed: ") ? ` (${problem.title.slice("The app crashed: ".length)})` : ""}. Find out why and fix it so it starts and keeps running.\n\nThe end of its log:`
      : `${problem.title} (reported by the preview). Find the cause in the code and fix it.\n\nThe errors:`;
  const fence = "```";
  const budget = FIX_PROMPT_MAX_CHARS - head.length - 2 * (fence.length + 2) - 40;
  const quoted: string[] = [];
  let used = 0;
  for (let i = problem.lines.length - 1; i >= 0; i--) {
    const text = quoteLine(problem.lines[i]!);
    if (used + text.length + 1 > budget) {
      quoted.unshift(`[… ${i + 1} earlier line${i === 0 ? "" : "s"} left out …]`);
      break;
    }
    quoted.unshift(text);
    used += text.length + 1;
  }
  return `${head}\n${fence}\n${quoted.join("\n")}\n${fence}`;
}

function quoteLine(line: AppLogLine): string {
  const text = line.text.length > FIX_LINE_CHARS ? `${line.text.slice(0, FIX_LINE_CHARS)} […]` : line.text;
  // Fences inside the text would end the quote early.
  const safe = text.replaceAll("```", "'''");
  return line.stream === "stdout" ? safe : `[${line.stream}] ${safe}`;
}

/** Why "Fix this" is disabled, or null when it can be sent. */
export function fixBlockedReason(runActive: boolean, modelProblem: string | null): string | null {
  if (runActive) return "The agent is working: Fix this opens again when the run ends (or stop it).";
  if (modelProblem) return "Fix this needs a model: see the notice under the prompt box.";
  return null;
}
