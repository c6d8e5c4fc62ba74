import { Link } from "@remix-run/react";
import { formatCost } from "./cost";
import { foldEvents } from "./live-run";
import { LiveRunCard } from "./live-run-card";
import type { RunDetail } from "./run-detail.server";
import { duration, tokens } from "./run-history";
import { RelativeTime } from "~/components/relative-time";

/** One run of the history, opened: its prompt and numbers, then the card it had (plan, steps with output, files), read-only. */
export function RunDetailView({ detail }: { detail: RunDetail }) {
  const { summary } = detail;
  const run = foldEvents(detail.seed, detail.events);
  return (
    <article className="run-detail" aria-label="Run detail" data-run-id={summary.id}>
      <p>
        <Link to="?view=runs" preventScrollReset>
          ← All runs
        </Link>
      </p>
      <blockquote className="run-detail-prompt">
        <span className="mode">{summary.mode}</span> {summary.prompt}
      </blockquote>
      <dl className="run-detail-facts">
        <div>
          <dt>Started</dt>
          <dd>
            <RelativeTime date={summary.createdAt} />
          </dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{duration(summary.durationMs)}</dd>
        </div>
        <div>
          <dt>Tokens (in / out)</dt>
          <dd>
            {tokens(summary.inputTokens)} / {tokens(summary.outputTokens)}
          </dd>
        </div>
        <div>
          <dt>Cost (est.)</dt>
          <dd>{formatCost(summary.costUsd)}</dd>
        </div>
      </dl>
      <LiveRunCard run={run} readOnly />
    </article>
  );
}
