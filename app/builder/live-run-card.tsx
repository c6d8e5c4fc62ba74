import { Form } from "@remix-run/react";
import { isFinished } from "../../db/run-status";
import { formatCost } from "./cost";
import { currentStep, progressOf, shownOutput, type LivePartial, type LiveRun, type LiveStep } from "./live-run";
import { tokens } from "./run-history";
import { RunStatusBadge } from "~/components/run-status";

const TODO_MARK = { pending: "○", in_progress: "◐", completed: "●" } as const;
const TODO_LABEL = { pending: "to do", in_progress: "in progress", completed: "done" } as const;

/**
 * The active run, live: status, iteration n of max, the tool running now,
 * the todo list, the files changed; finished steps fold into a list below,
 * each with its output. Stop submits a plain form (works without JavaScript);
 * with JavaScript the page also stops on Esc and shows Stopping at once.
 * `readOnly` renders a past run the same way, without Stop (the run detail).
 */
export function LiveRunCard({
  run,
  stopRequested = false,
  onStop,
  readOnly = false,
}: {
  run: LiveRun;
  stopRequested?: boolean;
  onStop?: () => void;
  readOnly?: boolean;
}) {
  const active = !isFinished(run.status);
  const status = stopRequested && active ? "stopping" : run.status;
  const step = currentStep(run);
  const finishedSteps = step ? run.steps.slice(0, -1) : run.steps;
  const progress = progressOf({ ...run, status });
  const headingId = `live-heading-${run.id}`;
  const lastVersion = (run.versions ?? []).at(-1);
  const heading = readOnly
    ? run.mode === "ask"
      ? "Answer"
      : "Build"
    : active
      ? run.mode === "ask"
        ? "Answering"
        : "Building"
      : run.mode === "ask"
        ? "Last answer"
        : "Last build";
  return (
    <section
      className={`live-card live-${status}`}
      aria-labelledby={headingId}
      data-run-id={run.id}
      data-status={status}
    >
      <div className="live-head">
        <h2 id={headingId}>{heading}</h2>
        <span role="status" aria-live="polite" className="live-status">
          <RunStatusBadge status={status} />
        </span>
        {active && !readOnly ? (
          <Form
            method="post"
            onSubmit={(event) => {
              if (onStop) {
                event.preventDefault();
                onStop();
              }
            }}
          >
            <input type="hidden" name="runId" value={run.id} />
            <button
              type="submit"
              name="intent"
              value="stop"
              className="danger small"
              disabled={status === "stopping"}
              aria-keyshortcuts="Escape"
            >
              {status === "stopping" ? "Stopping…" : "Stop"}
            </button>
          </Form>
        ) : null}
      </div>

      <div className="live-progress" data-iteration={run.iteration}>
        <label htmlFor={`progress-${run.id}`}>{progress.label}</label>
        <progress id={`progress-${run.id}`} max={progress.max} value={progress.value} />
        {run.usage ? (
          <span className="live-usage">
            {tokens(run.usage.inputTokens)} in / {tokens(run.usage.outputTokens)} out tokens · about{" "}
            {formatCost(run.usage.costUsd)}
          </span>
        ) : null}
      </div>

      {active ? (
        <p className="live-now" aria-live="polite">
          {status === "queued" ? (
            "Waiting for the engine to pick up the run…"
          ) : status === "stopping" ? (
            "Stopping: cancelling what is in flight…"
          ) : run.resuming ? (
            <span className="live-resuming">Interrupted — resuming (attempt {run.resuming.attempt})…</span>
          ) : step ? (
            <>
              <code className="tool-name">{step.tool}</code>{" "}
              <span className="live-description">{step.description}</span>
            </>
          ) : run.thinking ? (
            "Thinking about the next step…"
          ) : (
            "Working…"
          )}
        </p>
      ) : null}
      {active && status === "running" && run.partial ? <PartialAnswer partial={run.partial} /> : null}
      {active ? null : run.status === "failed" && run.error ? (
        <p className="error live-error" role="alert">
          {run.error}
        </p>
      ) : null}

      {run.notices.length > 0 ? (
        <ul className="live-notices" aria-label="Notices">
          {run.notices.map((notice) => (
            <li key={`${notice.kind}-${notice.iteration}`} className={`live-notice notice-${notice.kind}`}>
              <span className="notice-step">Step {notice.iteration}:</span> {notice.text}
            </li>
          ))}
        </ul>
      ) : null}

      {run.todos.length > 0 ? (
        <div className="live-section">
          <h3>Plan</h3>
          <ul className="todos">
            {run.todos.map((todo) => (
              <li key={todo.id} className={`todo todo-${todo.status}`}>
                <span aria-hidden="true">{TODO_MARK[todo.status] ?? "○"}</span> {todo.content}{" "}
                <span className="visually-hidden">({TODO_LABEL[todo.status] ?? todo.status})</span>
              </li>
            ))}
          </ul>
        </div>
      ) : null}

      {run.files.length > 0 ? (
        <div className="live-section">
          <h3>Files changed</h3>
          {lastVersion ? (
            <p className="version-links">
              <a href={versionHref(lastVersion.id, "run")}>See the run&apos;s diff</a>
            </p>
          ) : null}
          <ul className="changed-files">
            {run.files.map((file) => (
              <li key={file}>
                <a href={`?view=files&file=${encodeURIComponent(file)}`}>
                  <code>{file}</code>
                </a>
              </li>
            ))}
          </ul>
        </div>
      ) : null}

      {finishedSteps.length > 0 ? (
        <details className="live-section steps" open={readOnly || undefined}>
          <summary>
            {finishedSteps.length} finished step{finishedSteps.length === 1 ? "" : "s"}
          </summary>
          <ol>
            {finishedSteps.map((s, i) => (
              <StepLine key={`${s.iteration}-${i}`} step={s} />
            ))}
          </ol>
        </details>
      ) : null}
    </section>
  );
}

/** What the model is writing now, as it writes it: the file's content, the reply, the command. */
function PartialAnswer({ partial }: { partial: LivePartial }) {
  const label =
    partial.tool === "write_file" ? (
      <>
        Writing <code>{partial.path || "a file"}</code>…
      </>
    ) : partial.tool === "reply_to_user" ? (
      "Writing the reply…"
    ) : partial.tool === "run_command" || partial.tool === "start_app" ? (
      "Choosing a command…"
    ) : partial.tool ? (
      <>
        Preparing <code className="tool-name">{partial.tool}</code>…
      </>
    ) : (
      "The model is writing…"
    );
  return (
    <div className="live-partial" data-iteration={partial.iteration} data-tool={partial.tool}>
      <p className="live-partial-head">
        <span className="live-partial-dot" aria-hidden="true" /> {label}
        {partial.skipped > 0 ? <span className="live-partial-skipped"> (the last part shown)</span> : null}
      </p>
      {partial.text ? (
        // Bottom-anchored: the newest text stays in view as it grows. Not a live region: it changes many times a second.
        <div className="live-partial-scroll">
          <pre className="live-partial-text">
            {partial.skipped > 0 ? "…" : ""}
            {partial.text}
          </pre>
        </div>
      ) : null}
    </div>
  );
}

function StepLine({ step }: { step: LiveStep }) {
  const output = shownOutput(step);
  return (
    <li className={step.ok === false ? "step step-failed" : "step"}>
      <span aria-hidden="true">{step.ok === false ? "✗" : "✓"}</span>{" "}
      <span className="visually-hidden">{step.ok === false ? "failed:" : "done:"}</span>
      <code className="tool-name">{step.tool}</code> {step.description}
      {step.summary && step.summary !== step.description ? (
        <span className="step-summary"> → {step.summary}</span>
      ) : null}
      {step.version ? (
        <>
          {" "}
          <a className="step-version" href={versionHref(step.version.id, "step")}>
            {changeCounts(step.version)} · diff
          </a>
        </>
      ) : null}
      {step.refused?.length ? (
        // The sandbox's egress policy refused these: the builder sees why a download failed.
        <p className="step-refused">Blocked by the sandbox&apos;s network policy: {step.refused.join(", ")}</p>
      ) : null}
      {output ? (
        // A failed step opens on why it failed; the others stay one line until asked.
        <details className="step-output" open={step.ok === false || undefined}>
          <summary>Output</summary>
          <pre>{output}</pre>
        </details>
      ) : null}
    </li>
  );
}

/** The History view's diff of a version: its step's changes, or its whole run's. */
export function versionHref(versionId: string, scope: "step" | "run"): string {
  return `?view=history&version=${encodeURIComponent(versionId)}&scope=${scope}`;
}

/** "+1 ~2 −0" files, for a link's text. */
export function changeCounts(v: { added: number; changed: number; deleted: number }): string {
  return `+${v.added} ~${v.changed} −${v.deleted}`;
}
