import { Form, Link, useActionData, useFetcher, useNavigation } from "@remix-run/react";
import { useEffect, useLayoutEffect, useRef, useState, type UIEvent } from "react";
import { appStateDetail, appStateLabel, fixPrompt, type AppLogBuffer, type AppProblem } from "./app-log";
import type { AppLogLine, AppLogStatus } from "~/models/app-log";

/** What the route's action answers to Restart and Stop (and to every other intent). */
interface ControlAnswer {
  ok: boolean;
  intent: string;
  message?: string;
  error?: string;
  settled?: boolean;
}

const STREAM_MARK: Record<AppLogLine["stream"], string | null> = {
  stdout: null,
  stderr: "stderr",
  system: "dyno",
  browser: "browser",
};

// useLayoutEffect warns when rendered on the server; the scroll only matters in the browser.
const useBrowserLayoutEffect = typeof document === "undefined" ? useEffect : useLayoutEffect;

/**
 * The Logs view: the app's state (with why it crashed or stopped), Restart
 * and Stop, "Fix this" for a crash or browser errors, and the live log. The
 * buttons are forms, so they work without JavaScript; with it, Restart and
 * Stop go through a fetcher and the log follows the stream, staying at the
 * bottom unless the builder scrolled up to read.
 */
export function AppLogsView({
  status,
  log,
  problem,
  fixBlocked,
  onFixSent,
}: {
  status: AppLogStatus;
  log: AppLogBuffer;
  problem: AppProblem | null;
  /** Why Fix this cannot be sent now (a run is active, no model), or null. */
  fixBlocked: string | null;
  onFixSent?: (problem: AppProblem) => void;
}) {
  const control = useFetcher<ControlAnswer>();
  const actionData = useActionData<ControlAnswer>();
  const pending = control.state !== "idle" ? String(control.formData?.get("intent") ?? "") : null;
  // With JavaScript the answer is the fetcher's; without, the page's own action data.
  const answer =
    control.data ?? (actionData && actionData.intent.startsWith("app-") ? actionData : undefined) ?? undefined;
  const detail = appStateDetail(status);
  const canStop = status.controllable && (status.state !== "stopped" || status.nextRestartAt !== null);

  return (
    <div className="logs-panel" data-app-state={status.state}>
      <div className="logs-head">
        <div className="logs-state" role="status" aria-live="polite">
          <AppStateBadge status={status} />
          {detail ? <span className="logs-detail">{detail}</span> : null}
        </div>
        <control.Form method="post" className="logs-controls">
          <button
            type="submit"
            name="intent"
            value="app-restart"
            className="small"
            disabled={!status.controllable || pending !== null}
          >
            {pending === "app-restart" ? "Restarting…" : status.state === "stopped" ? "Start" : "Restart"}
          </button>
          <button
            type="submit"
            name="intent"
            value="app-stop"
            className="ghost small"
            disabled={!canStop || pending !== null}
          >
            {pending === "app-stop" ? "Stopping…" : "Stop"}
          </button>
        </control.Form>
      </div>
      {status.command ? (
        <p className="hint logs-command">
          <code>{status.command}</code>
        </p>
      ) : null}
      {/* A settled answer only restates the badge; one still on its way, or a refusal, says something new. */}
      {answer && !(answer.ok && answer.settled) ? (
        <p className={answer.ok ? "hint" : "error"} role={answer.ok ? "status" : "alert"}>
          {answer.ok ? answer.message : answer.error}
        </p>
      ) : null}
      {problem ? (
        <div className="fix-callout" role="alert">
          <p>
            <strong>{problem.title}.</strong> Send it to the agent with what the log says.
          </p>
          <FixThis problem={problem} command={status.command} blocked={fixBlocked} onSent={onFixSent} />
          {fixBlocked ? <p className="hint">{fixBlocked}</p> : null}
        </div>
      ) : null}
      <LogLines log={log} />
    </div>
  );
}

function LogLines({ log }: { log: AppLogBuffer }) {
  const box = useRef<HTMLOListElement>(null);
  const pinned = useRef(true);
  const [behind, setBehind] = useState(false);
  // On the element itself: the list mounts only once there are lines, after the first render.
  const onScroll = (event: UIEvent<HTMLOListElement>) => {
    const el = event.currentTarget;
    pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (pinned.current) setBehind(false);
  };
  useBrowserLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    if (pinned.current) el.scrollTop = el.scrollHeight;
    else setBehind(true);
  }, [log.lines]);

  if (log.lines.length === 0) {
    return <p className="empty logs-empty">No output yet. What the app prints shows here as it runs.</p>;
  }
  return (
    <div className="logs-body">
      {log.truncated ? <p className="hint logs-truncated">Older lines are not shown.</p> : null}
      <ol className="app-log" ref={box} onScroll={onScroll} aria-label="App log" tabIndex={0}>
        {log.lines.map((line) => {
          const mark = STREAM_MARK[line.stream];
          return (
            <li key={line.seq} className={`log-line log-${line.stream}`} data-seq={line.seq} title={line.at}>
              {mark ? <span className="log-stream">{mark}</span> : null}
              <span className="log-text">{line.text}</span>
            </li>
          );
        })}
      </ol>
      {behind ? (
        <button
          type="button"
          className="small logs-latest"
          onClick={() => {
            const el = box.current;
            if (el) el.scrollTop = el.scrollHeight;
            pinned.current = true;
            setBehind(false);
          }}
        >
          ↓ Latest
        </button>
      ) : null}
    </div>
  );
}

export function AppStateBadge({ status }: { status: AppLogStatus }) {
  return (
    <span className={`badge app-badge app-badge-${status.state}`} data-state={status.state}>
      App {appStateLabel(status.state).toLowerCase()}
    </span>
  );
}

/**
 * The one-click "Fix this": the normal prompt form (build mode) with the
 * error text, bounded. Disabled while a run is active or without a model.
 */
export function FixThis({
  problem,
  command,
  blocked,
  small = false,
  onSent,
}: {
  problem: AppProblem;
  command: string | null;
  blocked: string | null;
  small?: boolean;
  onSent?: (problem: AppProblem) => void;
}) {
  // Sending: disabled until the run it starts disables it (a second click would only be refused, 409).
  const navigation = useNavigation();
  const sending = navigation.state === "submitting" && navigation.formData?.get("intent") === "prompt";
  return (
    <Form method="post" className="fix-form" onSubmit={() => onSent?.(problem)}>
      <input type="hidden" name="mode" value="build" />
      <input type="hidden" name="prompt" value={fixPrompt(problem, command)} />
      <button
        type="submit"
        name="intent"
        value="prompt"
        className={small ? "small fix-button" : "fix-button"}
        disabled={blocked !== null || sending}
        title={blocked ?? `Ask the agent to fix it: ${problem.title}`}
      >
        {sending ? "Sending…" : "Fix this"}
      </button>
    </Form>
  );
}

/** Near the preview: "App running · Logs", "App crashed · Logs · Fix this". */
export function AppIndicator({
  status,
  problem,
  fixBlocked,
  onFixSent,
}: {
  status: AppLogStatus;
  problem: AppProblem | null;
  fixBlocked: string | null;
  onFixSent?: (problem: AppProblem) => void;
}) {
  return (
    <span className="app-indicator" data-state={status.unknown ? "unknown" : status.state}>
      {status.unknown ? <span className="hint">App</span> : <AppStateBadge status={status} />}
      <Link to="?view=logs" preventScrollReset className="small">
        Logs
      </Link>
      {problem ? (
        <FixThis problem={problem} command={status.command} blocked={fixBlocked} small onSent={onFixSent} />
      ) : null}
    </span>
  );
}
