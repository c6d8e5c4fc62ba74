/**
 * What the preview shows while the app is not serving: a page that says so and refreshes itself, never a blank
 * frame. Page loads get HTML; scripts' requests and module imports get the same status with plain text.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AppLogLine, AppStatus } from "../../sandbox/types";
import { escapeHtml, isHtmlNavigation, NO_STORE, SAFETY_HEADERS } from "./http";

/** Lines of the app's log the crashed page shows. */
export const CRASH_LOG_LINES = 20;
const STARTING_REFRESH_SECONDS = 2;
const CRASHED_REFRESH_SECONDS = 5;

function page(title: string, refreshSeconds: number, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${refreshSeconds}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;color:#1f2937;background:#f9fafb;margin:0;padding:2rem}
main{max-width:42rem;margin:0 auto}h1{font-size:1.15rem;margin:0 0 .5rem}
pre{background:#111827;color:#e5e7eb;padding:.75rem;border-radius:6px;overflow:auto;font-size:12px;white-space:pre-wrap}
.spinner{display:inline-block;width:.9em;height:.9em;border:2px solid #c7d2fe;border-top-color:#4338ca;border-radius:50%;animation:spin 1s linear infinite;vertical-align:-2px;margin-right:.4rem}
@keyframes spin{to{transform:rotate(360deg)}}
</style></head><body><main>${body}</main></body></html>
`;
}

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  retryAfter: number,
  html: string,
  plain: string,
): void {
  const navigation = isHtmlNavigation(req);
  const body = navigation ? html : plain;
  res.writeHead(status, {
    ...SAFETY_HEADERS,
    ...NO_STORE,
    "Retry-After": String(retryAfter),
    "Content-Type": navigation ? "text/html; charset=utf-8" : "text/plain; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(body)),
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** 503 while the app starts (or is being started for this request). */
export function startingPage(req: IncomingMessage, res: ServerResponse, status: AppStatus | null): void {
  const command = status?.command ? `<p>Running <code>${escapeHtml(status.command)}</code>.</p>` : "";
  answer(
    req,
    res,
    503,
    STARTING_REFRESH_SECONDS,
    page(
      "Starting your app…",
      STARTING_REFRESH_SECONDS,
      `<h1 data-dyno-state="starting"><span class="spinner"></span>Starting your app…</h1>${command}<p>This page refreshes by itself.</p>`,
    ),
    "The app is starting; try again shortly.",
  );
}

/** 502 when the app crashed: the reason and the last log lines, and who can bring it back. */
export function crashedPage(req: IncomingMessage, res: ServerResponse, status: AppStatus, lines: AppLogLine[]): void {
  const reason = status.reason ?? "it stopped unexpectedly";
  const log = lines.length
    ? `<p>The last lines of its log:</p><pre>${escapeHtml(lines.map((l) => `[${l.stream}] ${l.text}`).join("\n"))}</pre>`
    : "";
  const next = status.nextRestartAt
    ? `<p>It restarts by itself at ${escapeHtml(status.nextRestartAt)}.</p>`
    : "<p>Ask the agent to fix it, or restart it from the builder.</p>";
  answer(
    req,
    res,
    502,
    CRASHED_REFRESH_SECONDS,
    page(
      "Your app crashed",
      CRASHED_REFRESH_SECONDS,
      `<h1 data-dyno-state="crashed">Your app crashed: ${escapeHtml(reason)}</h1>${next}${log}`,
    ),
    `The app crashed: ${reason}`,
  );
}

/**
 * 503 for an app nobody has started yet (the agent may still be installing its packages): a start now would only
 * fail and fill the log with it. Refreshes, so the page appears once the agent or the builder starts it.
 */
export function notStartedPage(req: IncomingMessage, res: ServerResponse, status: AppStatus): void {
  const command = status.command ? ` (<code>${escapeHtml(status.command)}</code>)` : "";
  answer(
    req,
    res,
    503,
    CRASHED_REFRESH_SECONDS,
    page(
      "Your app is not running yet",
      CRASHED_REFRESH_SECONDS,
      `<h1 data-dyno-state="not-started">Your app is not running yet</h1><p>The agent starts it${command} when it is ready, or press Start in the builder's Logs view. This page refreshes by itself.</p>`,
    ),
    "The app has not been started yet.",
  );
}

/** 502 when it says it runs but does not answer (it just died, or it listens elsewhere). */
export function unreachablePage(req: IncomingMessage, res: ServerResponse): void {
  answer(
    req,
    res,
    502,
    STARTING_REFRESH_SECONDS,
    page(
      "Your app is not answering",
      STARTING_REFRESH_SECONDS,
      `<h1 data-dyno-state="unreachable"><span class="spinner"></span>Your app is not answering yet…</h1><p>This page refreshes by itself.</p>`,
    ),
    "The app is not answering.",
  );
}
