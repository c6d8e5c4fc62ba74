/**
 * What the agent is told about the project's app process at each think: its state, why it stopped or crashed, and
 * the lines of its log since the previous think that matter (stderr, Dyno's system lines, the preview page's browser
 * errors, and stdout lines that look like errors), bounded. Where the previous think stopped reading is kept in that
 * think's saved entry (payload.appLogSeq), so it is durable: a think re-run after a crash reads from the same place.
 */
import type { AgentEntry } from "../../db/schema";
import type { AppLogLine, Sandbox } from "../../sandbox";
import type { AppContext } from "./model/next-action";

export const MAX_CONTEXT_LOG_LINES = 40;
export const MAX_CONTEXT_LOG_BYTES = 4096;
/** With no earlier think to start from, look this far back. */
const FIRST_LOOK_LINES = 200;

const ERROR_LOOKING =
  /\b(error|errors|failed|failure|exception|cannot|can't|unable|warn(ing)?|ERR!|EADDRINUSE|ENOENT)\b|✘|✖/i;

/** Whether a log line is worth the model's attention. */
export function mattersToTheAgent(line: AppLogLine): boolean {
  // Stack frames ("    at fn (file:1:2)") of the dev server's own code crowd out the message above them.
  if (/^\s+at\s/.test(line.text)) return false;
  if (line.stream !== "stdout") return true;
  return ERROR_LOOKING.test(line.text);
}

/** The seq to read the log from: where the latest think of the project stopped (undefined: none did yet). */
export function lastAppLogSeq(entries: AgentEntry[]): number | undefined {
  let seq: number | undefined;
  for (const entry of entries) {
    const value = entry.payload.appLogSeq;
    if (typeof value === "number" && Number.isInteger(value) && (seq === undefined || value > seq)) seq = value;
  }
  return seq;
}

/** The newest lines that fit MAX_CONTEXT_LOG_LINES and MAX_CONTEXT_LOG_BYTES, with a note for what was left out. */
export function boundedLines(lines: string[]): string[] {
  const kept: string[] = [];
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.length > 500 ? `${lines[i]!.slice(0, 500)}…` : lines[i]!;
    const size = Buffer.byteLength(line) + 1;
    if (kept.length >= MAX_CONTEXT_LOG_LINES || bytes + size > MAX_CONTEXT_LOG_BYTES) break;
    kept.unshift(line);
    bytes += size;
  }
  const left = lines.length - kept.length;
  return left
    ? [`[… ${left} earlier line${left === 1 ? "" : "s"} not shown; app_logs reads the log …]`, ...kept]
    : kept;
}

/**
 * The app's part of the project context, and the seq the next think starts from. Undefined context when there is
 * no app to speak of (a static site: nothing set to run, nothing logged); never throws (the app is a hint, not a
 * reason to fail a think).
 */
export async function appContextFor(
  sandbox: Sandbox,
  sinceSeq: number | undefined,
): Promise<{ context?: AppContext; nextSeq?: number }> {
  try {
    const status = await sandbox.app.status();
    const logs = await sandbox.app.logs(
      sinceSeq === undefined ? { maxLines: FIRST_LOOK_LINES } : { sinceSeq, maxLines: 2000 },
    );
    const lines = logs.lines.filter(mattersToTheAgent).map((line) => `${line.stream}: ${line.text}`);
    const nothing = status.state === "stopped" && !status.command && !lines.length;
    if (nothing) return { nextSeq: logs.nextSeq };
    return {
      context: {
        state: status.state,
        command: status.command,
        port: status.port,
        reason: status.reason,
        new_log: boundedLines(lines),
      },
      nextSeq: logs.nextSeq,
    };
  } catch (error) {
    console.warn(`app context for sandbox ${sandbox.id}: ${(error as Error).message}`);
    return {};
  }
}
