import { Form, Link } from "@remix-run/react";
import type { RunSummary } from "./builder.server";
import { formatCost } from "./cost";
import { RelativeTime } from "~/components/relative-time";
import { RunStatusBadge } from "~/components/run-status";

export function duration(ms: number | null): string {
  if (ms === null) return "—";
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

export const tokens = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n));

/** Where a run's detail (its steps, outputs and files) opens: the Runs tab of the builder page. */
export const runDetailHref = (runId: string) => `?view=runs&run=${runId}`;

/** Every run of the project, newest first: status, duration, iterations, tokens, cost; each opens to its detail. */
export function RunHistory({ runs, canRetry }: { runs: RunSummary[]; canRetry: boolean }) {
  if (runs.length === 0) return <p className="empty">No runs yet.</p>;
  return (
    <div className="table-scroll">
      <table className="run-history">
        <caption className="visually-hidden">Run history</caption>
        <thead>
          <tr>
            <th scope="col">Prompt</th>
            <th scope="col">Status</th>
            <th scope="col">Duration</th>
            <th scope="col">Iterations</th>
            <th scope="col">Tokens (in / out)</th>
            <th scope="col">Cost (est.)</th>
            <th scope="col">Started</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr key={run.id} data-run-id={run.id}>
              <td className="prompt-cell">
                <span className="mode">{run.mode}</span>{" "}
                <Link to={runDetailHref(run.id)} preventScrollReset className="run-link">
                  {run.prompt.length > 90 ? `${run.prompt.slice(0, 90)}…` : run.prompt}
                </Link>
                {run.model.startsWith("replay/") ? <div className="hint">Replay, not a model</div> : null}
                {run.error ? <div className="error small-text">{run.error}</div> : null}
              </td>
              <td>
                <RunStatusBadge status={run.status} />
                {(run.status === "failed" || run.status === "stopped") && canRetry ? (
                  <Form method="post">
                    <input type="hidden" name="runId" value={run.id} />
                    <button type="submit" name="intent" value="retry" className="ghost small">
                      Retry
                    </button>
                  </Form>
                ) : null}
              </td>
              <td>{duration(run.durationMs)}</td>
              <td>
                {run.iteration} / {run.maxIterations}
              </td>
              <td>
                {tokens(run.inputTokens)} / {tokens(run.outputTokens)}
              </td>
              <td>{formatCost(run.costUsd)}</td>
              <td>
                <RelativeTime date={run.createdAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
