/**
 * The builder page's live event stream, as both ends see it: the SSE route
 * (project-events.server.ts) writes these messages, the browser hook
 * (app/hooks/use-project-events.ts) reads them. No server imports here.
 */

/** One run_events row as the browser receives it. `id` is also the SSE event id. */
export interface ProjectEvent {
  id: number;
  runId: string;
  type: string;
  data: Record<string, unknown>;
  /** ISO 8601. */
  createdAt: string;
}

/** SSE event name of a run_events row (carries an `id:` line). */
export const RUN_EVENT = "run-event";
/** SSE event name of a keep-alive (no `id:` line, so the browser's Last-Event-ID stays put). */
export const HEARTBEAT_EVENT = "heartbeat";

export const projectEventsUrl = (projectId: string, after = 0) =>
  `/projects/${encodeURIComponent(projectId)}/events?after=${after}`;
