/**
 * The preview server: each project's built app on an origin of its own (decision 021, after 009), so a page the
 * agent built cannot act as the signed-in builder (its scripts cannot read the builder's pages or call its API with
 * the builder's rights: the app refuses cross-origin writes and sends no CORS headers), and no two projects share
 * cookies or storage, while each page keeps a normal origin with working storage, which built apps use.
 *
 * The host names the project: `<label>.<domain>`, the label from app/preview-token.server.ts (the capability) under
 * the template's domain (app/preview-origin.server.ts). Any other host answers 404, saying no more. Per request:
 * the project's app process running -> proxied to it (./preview/proxy.ts); starting, crashed or stopped with a
 * command -> a page that says so (./preview/pages.ts); no app -> the workspace's files at `/` (./preview/static.ts).
 * HTML pages get the browser error reporter (./preview/report.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import {
  labelOfHost,
  localPreviewOriginTemplate,
  previewOriginOf,
  previewOriginSource,
  type PreviewOriginTemplate,
} from "../app/preview-origin.server";
import { previewLabel, projectIdForPreviewLabel } from "../app/preview-token.server";
import type { AppProcess, AppStatus } from "../sandbox/types";
import { isHtmlNavigation, notFound, splitTarget, text } from "./preview/http";
import { CRASH_LOG_LINES, crashedPage, notStartedPage, startingPage, unreachablePage } from "./preview/pages";
import { proxyHttp, proxyUpgrade } from "./preview/proxy";
import {
  receiveReport,
  REPORT_ERRORS_PATH,
  REPORT_SCRIPT_PATH,
  ReportRateLimit,
  serveReportScript,
} from "./preview/report";
import { serveStatic } from "./preview/static";

export { previewContentType } from "./preview/static";

export interface PreviewServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Signs preview labels (the app's session secret). */
  secret: string;
  /** The public origins (PREVIEW_ORIGIN, parsed). Unset: `http://*.localhost:<the port listened on>`. */
  origin?: PreviewOriginTemplate;
  /**
   * The folder holding the project's files, or null when the project does not exist or has no files yet (404).
   * Called only with a uuid whose label checked out. Must not create anything.
   */
  resolveDirectory(projectId: string): Promise<string | null>;
  /** The project's app process, or null when it has none (no sandbox). Called only with a checked uuid. Unset: static only. */
  app?(projectId: string): Promise<AppProcess | null>;
  /**
   * Who may frame the preview (a CSP frame-ancestors source list: the builder's origin), or undefined for no
   * restriction. Built pages are meant to be seen inside the builder only.
   */
  frameAncestors?(req: IncomingMessage): string | undefined;
  /** How many browser error reports each project may send (default: REPORT_BURST, then REPORTS_PER_MINUTE). */
  reportLimit?: ReportRateLimit;
}

export interface PreviewServer {
  /** Where it listens: http://host:port, no trailing slash (connect here with a project's Host header). */
  url: string;
  port: number;
  /** The origins' template, as a CSP source: `http://*.localhost:4001`. */
  originSource: string;
  /** A project's preview origin, no trailing slash. */
  originFor(projectId: string): string;
  close(): Promise<void>;
}

interface Context {
  options: PreviewServerOptions;
  template: PreviewOriginTemplate;
  scheme: string;
  reports: ReportRateLimit;
}

export async function startPreviewServer(options: PreviewServerOptions): Promise<PreviewServer> {
  const host = options.host ?? "127.0.0.1";
  const context: Context = {
    options,
    template: options.origin!,
    scheme: "http",
    reports: options.reportLimit ?? new ReportRateLimit(),
  };
  const server = createServer((req, res) => {
    handle(req, res, context).catch((error: unknown) => {
      console.error("preview: request failed:", error);
      if (!res.headersSent) text(res, 500, "Internal error");
      else res.destroy();
    });
  });
  // Upgraded sockets leave the server's connection tracking: closeAllConnections would not end them.
  const upgraded = new Set<Duplex>();
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgraded.add(socket);
    socket.once("close", () => upgraded.delete(socket));
    socket.on("error", () => socket.destroy());
    upgrade(req, socket, head, context).catch((error: unknown) => {
      console.error("preview: upgrade failed:", error);
      refuseUpgrade(socket, 500, "Internal Server Error");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  context.template = options.origin ?? localPreviewOriginTemplate(port);
  context.scheme = context.template.protocol.slice(0, -1);
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    originSource: previewOriginSource(context.template),
    originFor: (projectId) => previewOriginOf(context.template, previewLabel(options.secret, projectId)),
    close: () => {
      for (const socket of upgraded) socket.destroy();
      return closeServer(server);
    },
  };
}

/** The project the request's Host names, or null (another host, a wrong or missing label). */
function projectOf(req: IncomingMessage, context: Context): string | null {
  const label = labelOfHost(context.template, req.headers.host);
  return label ? projectIdForPreviewLabel(context.options.secret, label) : null;
}

/** What to do with the app: serve the files (no app to run), or its state. */
function servesStatically(status: AppStatus | null): boolean {
  return !status || (status.state === "stopped" && status.command === null);
}

async function handle(req: IncomingMessage, res: ServerResponse, context: Context): Promise<void> {
  const { options } = context;
  const ancestors = options.frameAncestors?.(req);
  if (ancestors) res.setHeader("Content-Security-Policy", `frame-ancestors ${ancestors}`);
  const projectId = projectOf(req, context);
  if (!projectId) return notFound(res);
  const { path } = splitTarget(req.url ?? "");

  if (path === REPORT_SCRIPT_PATH) {
    if (req.method !== "GET" && req.method !== "HEAD")
      return text(res, 405, "Method not allowed", { Allow: "GET, HEAD" });
    return serveReportScript(res);
  }
  if (path === REPORT_ERRORS_PATH) {
    return receiveReport(req, res, projectId, context.reports, async (line) => {
      const app = await options.app?.(projectId);
      await app?.appendLog("browser", line);
    });
  }
  if (path.startsWith("/__dyno/")) return notFound(res);

  const app = (await options.app?.(projectId)) ?? null;
  const status = app ? await app.status() : null;
  if (!app || !status || servesStatically(status))
    return serveStatic(req, res, await options.resolveDirectory(projectId));
  app.touch();
  switch (status.state) {
    case "running": {
      const endpoint = await app.endpoint();
      if (!endpoint) return startingPage(req, res, status);
      if (endpoint.kind !== "socket") return unreachablePage(req, res);
      return proxyHttp(
        req,
        res,
        { socketPath: endpoint.path, port: status.port },
        {
          frameAncestors: ancestors,
          scheme: context.scheme,
          injectReport: isHtmlNavigation(req),
          unreachable: () => unreachablePage(req, res),
        },
      );
    }
    case "starting":
      return startingPage(req, res, status);
    case "crashed": {
      const logs = await app.logs({ maxLines: CRASH_LOG_LINES });
      return crashedPage(req, res, status, logs.lines.slice(-CRASH_LOG_LINES));
    }
    case "stopped":
      // Never started: the agent may still be writing it or installing its packages; it starts it, not a visit.
      if (status.startedAt === null) return notStartedPage(req, res, status);
      // Stopped after it ran (idle, or Dyno restarted since): this visit starts it again.
      app.start().catch((error: unknown) => {
        console.warn(
          `preview: could not start project ${projectId}'s app:`,
          error instanceof Error ? error.message : error,
        );
      });
      return startingPage(req, res, status);
  }
}

async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, context: Context): Promise<void> {
  const projectId = projectOf(req, context);
  if (!projectId) return refuseUpgrade(socket, 404, "Not Found");
  const app = (await context.options.app?.(projectId)) ?? null;
  const status = app ? await app.status() : null;
  const endpoint = app && status?.state === "running" ? await app.endpoint() : null;
  if (!app || !status || endpoint?.kind !== "socket") return refuseUpgrade(socket, 503, "Service Unavailable");
  app.touch();
  proxyUpgrade(req, socket, head, { socketPath: endpoint.path, port: status.port }, context.scheme, () =>
    refuseUpgrade(socket, 502, "Bad Gateway"),
  );
}

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  if (!socket.writable) return void socket.destroy();
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
