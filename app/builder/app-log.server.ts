/**
 * The project's app process as the builder sees it: its status and log as a
 * Server-Sent Events stream (GET /projects/:projectId/app-log), what the
 * builder page loads for it, and the Restart and Stop actions.
 *
 * The supervisor (sandbox.app) keeps the log; nothing here stores it. The
 * stream polls `status()` and `logs({ sinceSeq })` every APP_LOG_POLL_MS and
 * sends what changed: a status message when the status differs from the last
 * one sent, a batch of lines whose SSE id is the last line's seq. The
 * browser's EventSource sends that id back as Last-Event-ID when it
 * reconnects, so it resumes after the last line it got. Everything is
 * bounded: the backlog a new stream starts with, the lines per message, the
 * characters per line.
 *
 * Polling rather than a push from the supervisor: the contract has no
 * subscription, and a log that a dev server writes in bursts reads fine at
 * 2-3 looks a second. Reading is pull-based (the next poll waits until the
 * client took the last message), so a slow client never piles lines up here.
 */
import {
  SandboxUnavailableError,
  type AppLogLine,
  type AppLogs,
  type AppProcess,
  type AppStatus,
} from "../../sandbox/types";
import { openSseStreams, sseResponse } from "../http/sse.server";
import {
  APP_HEARTBEAT_EVENT,
  APP_LOG_EVENT,
  APP_STATUS_EVENT,
  type AppLogBatch,
  type AppLogStatus,
} from "../models/app-log";
import { openProjectSandbox, type ProjectRef } from "../models/project-files.server";

/** How often a stream looks at the app's status and log. */
export const APP_LOG_POLL_MS = 400;
/** Lines a stream without a resume point starts with (the most recent ones). */
export const APP_LOG_BACKLOG_LINES = 500;
/** Lines per message (and per look at the log): a burst is sent in several messages. */
export const APP_LOG_BATCH_LINES = 500;
/** Characters kept of one line: a minified bundle printed on one line is not sent whole. */
export const APP_LOG_MAX_LINE_CHARS = 4000;
/** Lines the builder page renders without JavaScript (and starts from with it). */
export const APP_LOG_PAGE_LINES = 200;
/** How long Restart and Stop wait for the app before answering; the Logs view shows the rest. */
export const APP_CONTROL_WAIT_MS = 3000;
/** Heartbeat period, so proxies keep an idle stream open. */
export const APP_LOG_HEARTBEAT_MS = 15_000;

/** The project's app process, or why there is none to control (its status then says so). */
export type ProjectApp = { app: AppProcess; status?: undefined } | { app: null; status: AppLogStatus };

const idle = (reason: string): AppLogStatus => ({
  state: "stopped",
  command: null,
  port: null,
  startedAt: null,
  restarts: 0,
  reason,
  nextRestartAt: null,
  controllable: false,
});

export const NOTHING_BUILT = "Nothing to run yet: the agent has not written any files in this project.";

/**
 * Opens the project's app through its sandbox (the provider that holds its
 * files). A project no run has touched has no sandbox, and none is created
 * for it; one whose sandbox cannot be opened (Modal without credentials) is
 * reported, not thrown.
 */
export async function openProjectApp(project: ProjectRef): Promise<ProjectApp> {
  try {
    const sandbox = await openProjectSandbox(project);
    if (!sandbox) return { app: null, status: idle(NOTHING_BUILT) };
    return { app: sandbox.app };
  } catch (error) {
    if (error instanceof SandboxUnavailableError) return { app: null, status: idle(error.message) };
    throw error;
  }
}

export async function appStatusOf(opened: ProjectApp): Promise<AppLogStatus> {
  if (!opened.app) return opened.status;
  return { ...(await opened.app.status()), controllable: true };
}

/** What the builder page renders of the app: its status, and in the Logs view its recent lines. */
export interface AppPanelData {
  status: AppLogStatus;
  lines: AppLogLine[];
  /** The last seq in `lines` (the stream resumes after it); null when the page loaded none (the stream sends the backlog). */
  cursor: number | null;
  /** Older lines exist that are not in `lines`. */
  truncated: boolean;
}

/**
 * Outside the Logs view the page loads only a local project's status. Opening a Modal sandbox whose box has ended
 * creates a new one (sandbox/modal.ts), and the loader runs on every revalidation during a run; the page's stream
 * (opened once per page) brings the status instead.
 */
export async function loadAppPanel(project: ProjectRef, { withLines }: { withLines: boolean }): Promise<AppPanelData> {
  if (!withLines && project.sandboxProvider !== null && project.sandboxProvider !== "local") {
    return { status: { ...idle("Not looked at yet."), unknown: true }, lines: [], cursor: null, truncated: false };
  }
  const opened = await openProjectApp(project);
  // Status first: a line written between the two reads is in the log, never lost behind the cursor.
  const status = await appStatusOf(opened);
  if (!withLines || !opened.app) return { status, lines: [], cursor: withLines ? -1 : null, truncated: false };
  const logs = await recentLogs(opened.app, APP_LOG_PAGE_LINES);
  const lines = logs.lines.map(boundLine);
  return { status, lines, cursor: lines.at(-1)?.seq ?? logs.nextSeq - 1, truncated: logs.truncated };
}

/**
 * The newest `maxLines` lines. The contract's `truncated` ("lines older than
 * the first returned were dropped, or more than maxLines were newer") reads as
 * a gap before the first line returned: the supervisor keeps the newest.
 */
function recentLogs(app: AppProcess, maxLines: number): Promise<AppLogs> {
  return app.logs({ maxLines });
}

/**
 * Where a stream resumes: after the `Last-Event-ID` header (a reconnecting
 * EventSource), else after the `after` query parameter (the page's cursor),
 * else null: start with the backlog. -1 means "after nothing" (from the
 * first line kept). Anything else than an integer of at least -1 is a 400.
 */
export function appLogStart(request: Request): number | null {
  const lastEventId = request.headers.get("Last-Event-ID");
  if (lastEventId !== null && lastEventId.trim() !== "") return parseSeq(lastEventId, "Last-Event-ID");
  const after = new URL(request.url).searchParams.get("after");
  if (after !== null) return parseSeq(after, "after");
  return null;
}

function parseSeq(value: string, name: string): number {
  const text = value.trim();
  const seq = /^(-1|\d{1,15})$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new Response(`${name} must be a log line number (an integer, -1 or more)`, {
      status: 400,
      statusText: "Bad Request",
    });
  }
  return seq;
}

/** A line cut to APP_LOG_MAX_LINE_CHARS, with a marker saying how much was left out. */
export function boundLine(line: AppLogLine): AppLogLine {
  if (line.text.length <= APP_LOG_MAX_LINE_CHARS) return line;
  const omitted = line.text.length - APP_LOG_MAX_LINE_CHARS;
  return { ...line, text: `${line.text.slice(0, APP_LOG_MAX_LINE_CHARS)} [… ${omitted} characters omitted …]` };
}

/** JSON.stringify escapes CR and LF, so each message's data fits on one `data:` line. */
export function appStatusMessage(status: AppLogStatus): string {
  return `event: ${APP_STATUS_EVENT}\ndata: ${JSON.stringify(status)}\n\n`;
}

/** A batch of lines; its id is the last line's seq. Call with at least one line. */
export function appLogMessage(batch: AppLogBatch): string {
  const last = batch.lines.at(-1);
  if (!last) throw new Error("an app log message needs at least one line");
  return `id: ${last.seq}\nevent: ${APP_LOG_EVENT}\ndata: ${JSON.stringify(batch)}\n\n`;
}

export function appHeartbeatMessage(): string {
  return `event: ${APP_HEARTBEAT_EVENT}\ndata: {}\n\n`;
}

/**
 * What one look at the log gives a stream that has sent everything up to
 * `lastSeq` (null: nothing yet): the lines it has not sent, bounded, and
 * whether some were skipped. Lines at or before `lastSeq` are dropped, so a
 * supervisor that counts `sinceSeq` inclusively or not makes no difference.
 */
export function nextBatch(logs: AppLogs, lastSeq: number | null): AppLogBatch & { lastSeq: number | null } {
  const fresh = logs.lines.filter((line) => lastSeq === null || line.seq > lastSeq);
  const lines = fresh.slice(-APP_LOG_BATCH_LINES).map(boundLine);
  const first = lines[0];
  // A gap: the supervisor says it dropped lines, or the first new line is not the one after lastSeq.
  const gap =
    first !== undefined &&
    (fresh.length > lines.length || (lastSeq === null ? logs.truncated : first.seq > lastSeq + 1));
  return { lines, gap, lastSeq: lines.at(-1)?.seq ?? lastSeq };
}

export interface AppLogStreamOptions {
  /** Opens the project's app; called again on each look while there is none (the first run creates the sandbox). */
  open: () => Promise<ProjectApp>;
  /** Send lines after this seq; null: start with the most recent APP_LOG_BACKLOG_LINES. */
  afterSeq: number | null;
  /** The load context's `responseClosed` (decision 016), never `request.signal`. */
  signal: AbortSignal;
  /** The load context's `responseDrained`: the next look waits until the socket took the last message. */
  drained?: () => Promise<void>;
  /** Tests only; the route always uses the defaults. */
  pollMs?: number;
  heartbeatMs?: number;
}

/**
 * The SSE response. The caller has checked that the user owns the project.
 * Ends when `signal` aborts, the body is cancelled, a write fails, or
 * reading the app fails (the browser then reconnects and resumes).
 */
export function appLogStream({
  open,
  afterSeq,
  signal,
  drained,
  pollMs = APP_LOG_POLL_MS,
  heartbeatMs = APP_LOG_HEARTBEAT_MS,
}: AppLogStreamOptions): Response {
  let opened: ProjectApp | null = null;
  let lastStatus = "";
  let lastSeq = afterSeq;
  let looks = 0;

  /** One look: the messages for what changed since the last one (often none). */
  const look = async (): Promise<string[]> => {
    if (!opened?.app) opened = await open();
    const messages: string[] = [];
    const status = await appStatusOf(opened);
    const statusJson = JSON.stringify(status);
    if (statusJson !== lastStatus) {
      lastStatus = statusJson;
      messages.push(appStatusMessage(status));
    }
    if (opened.app) {
      const logs =
        lastSeq === null
          ? await recentLogs(opened.app, APP_LOG_BACKLOG_LINES)
          : await opened.app.logs({ sinceSeq: lastSeq + 1, maxLines: APP_LOG_BATCH_LINES });
      const batch = nextBatch(logs, lastSeq);
      if (batch.lines.length > 0) {
        messages.push(appLogMessage({ lines: batch.lines, gap: batch.gap }));
        lastSeq = batch.lastSeq;
      } else if (lastSeq === null) {
        // An empty log: from now on, everything after where it stands.
        lastSeq = logs.nextSeq - 1;
      }
    }
    return messages;
  };

  return sseResponse({
    kind: "app-log",
    signal,
    drained,
    heartbeatMs,
    heartbeat: appHeartbeatMessage(),
    // Resolving with nothing would stall the stream, so a pull looks until there is something to send.
    async next(stop) {
      for (;;) {
        if (looks++ > 0) await sleep(pollMs, stop);
        if (stop.aborted) return null;
        const messages = await look();
        if (messages.length > 0) return messages;
      }
    },
    onError(error) {
      // A thrown Response is the project gone (deleted meanwhile): nothing to report.
      if (!(error instanceof Response)) console.error("app log stream failed; the client will reconnect:", error);
    },
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Open app log streams in this process. */
export function openAppLogStreams(): number {
  return openSseStreams("app-log");
}

// ---------------------------------------------------------------------------------------------------------------
// Restart and Stop

export const APP_INTENTS = ["app-restart", "app-stop"] as const;
export type AppIntent = (typeof APP_INTENTS)[number];

export function isAppIntent(intent: FormDataEntryValue | null): intent is AppIntent {
  return APP_INTENTS.includes(intent as AppIntent);
}

export type AppControlResult =
  /** settled: the app got where it was asked to within the wait (the badge says so); false: still on its way. */
  | { ok: true; intent: AppIntent; message: string; settled: boolean }
  | { ok: false; intent: AppIntent; error: string; status: number };

/**
 * Restarts or stops the project's app. Waits at most `waitMs` for it to get
 * there: a dev server may take many seconds to listen, and the Logs view
 * streams how it goes; the operation carries on after the answer.
 */
export async function controlProjectApp(
  project: ProjectRef,
  intent: AppIntent,
  { waitMs = APP_CONTROL_WAIT_MS }: { waitMs?: number } = {},
): Promise<AppControlResult> {
  const opened = await openProjectApp(project);
  if (!opened.app) return { ok: false, intent, error: opened.status.reason ?? NOTHING_BUILT, status: 409 };
  const operation =
    intent === "app-restart" ? opened.app.restart() : opened.app.stop("stopped by the builder (Stop in the Logs view)");
  const outcome = await Promise.race([
    operation.then(
      (status) => ({ kind: "done" as const, status }),
      (error: unknown) => ({ kind: "failed" as const, error }),
    ),
    new Promise<{ kind: "waiting" }>((resolve) => setTimeout(() => resolve({ kind: "waiting" }), waitMs).unref?.()),
  ]);
  if (outcome.kind === "waiting") {
    // Still going: its end (or failure) shows in the Logs view; a late failure is logged, not left unhandled.
    operation.catch((error: unknown) => console.error(`app ${intent} of project ${project.id} failed:`, error));
    return {
      ok: true,
      intent,
      message: intent === "app-restart" ? "Restarting… the log below shows when it is up." : "Stopping…",
      settled: false,
    };
  }
  if (outcome.kind === "failed") {
    if (outcome.error instanceof SandboxUnavailableError) {
      return { ok: false, intent, error: outcome.error.message, status: 503 };
    }
    console.error(`app ${intent} of project ${project.id} failed:`, outcome.error);
    return {
      ok: false,
      intent,
      error: `The app could not be ${intent === "app-restart" ? "restarted" : "stopped"}; the server log says why.`,
      status: 500,
    };
  }
  return { ok: true, intent, message: statusSentence(outcome.status), settled: true };
}

/** One sentence for an action's answer. */
export function statusSentence(status: AppStatus): string {
  switch (status.state) {
    case "running":
      return status.port ? `The app is running (port ${status.port}).` : "The app is running.";
    case "starting":
      return "The app is starting…";
    case "crashed":
      return `The app crashed${status.reason ? `: ${status.reason}` : "."}`;
    case "stopped":
      return `The app is stopped${status.reason ? `: ${status.reason}` : "."}`;
  }
}
