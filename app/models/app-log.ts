/**
 * The app process's live log as both ends see it: the SSE route
 * (app/builder/app-log.server.ts) writes these messages, the browser hook
 * (app/hooks/use-app-log.ts) reads them, and the Logs view renders them.
 * No server imports here.
 */
import type { AppLogLine, AppStatus } from "../../sandbox/types";

export type { AppLogLine, AppState, AppStatus } from "../../sandbox/types";

/** The app's status as the builder sees it: the supervisor's, plus whether Restart and Stop can do anything. */
export interface AppLogStatus extends AppStatus {
  /** False when there is nothing to control: no workspace yet, or the sandbox cannot be opened (reason says why). */
  controllable: boolean;
  /** Not looked at yet (the page's first render of a remote sandbox's project): show no state until the stream says. */
  unknown?: boolean;
}

/** SSE event: the app's status (no `id:` line), sent first and on every change. */
export const APP_STATUS_EVENT = "status";
/** SSE event: a batch of log lines; its `id:` is the last line's seq, so a reconnect resumes after it. */
export const APP_LOG_EVENT = "log";
/** SSE event: keep-alive (no `id:` line). */
export const APP_HEARTBEAT_EVENT = "heartbeat";

/** The data of an APP_LOG_EVENT message. */
export interface AppLogBatch {
  lines: AppLogLine[];
  /** Lines before these (and after what the client had) were dropped by a bound: the view says so. */
  gap: boolean;
}

/** `after`: the last seq the page already shows; without it the stream starts with the recent backlog. */
export const appLogUrl = (projectId: string, after?: number | null) =>
  `/projects/${encodeURIComponent(projectId)}/app-log${after === undefined || after === null ? "" : `?after=${after}`}`;
