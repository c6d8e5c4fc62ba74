/**
 * The HTTP server: Express in front of Remix. In development Vite serves the
 * app in middleware mode (with HMR on the same port); in production it serves
 * the `remix vite:build` output. Migrations run before the port opens, so the
 * app never serves a request against an old schema.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { AppLoadContext, ServerBuild } from "@remix-run/node";
import express from "express";
import { sessionSecret } from "../app/auth/secret.server";
import { env, inngestDevInProductionWarning } from "../app/env.server";
import { setListeningAddress } from "../app/inngest-serve.server";
import { responseClosedSignal, responseDrainedWaiter } from "../app/load-context";
import {
  projectPreviewApp,
  projectPreviewDirectory,
  previewOriginTemplate,
  setRunningPreviewServer,
} from "../app/preview.server";
import { closeDatabase, getDatabase } from "../db";
import { sandboxConfig, sandboxLimits } from "../inngest/agent/context";
import { closeDemoReplayServer } from "../inngest/agent/demo";
import { startRunReconciler } from "../inngest/reconcile";
import {
  checkLocalIsolation,
  closeEgressProxies,
  describeEgress,
  describeLimitSupport,
  localLimitSupport,
  stopAllAppProcesses,
} from "../sandbox";
import { refuseOversizedBodies } from "./body-limit";
import { insideAnyOf, unwatchedFolders } from "./dev-watch";
import { startPreviewServer } from "./preview";
import { createRemixHandler } from "./remix-handler";
import { refuseCrossOriginWrites } from "./same-origin";
import { makeCspNonce, previewFrameAncestors, securityHeaders } from "./security-headers";

export interface AppServerOptions {
  mode: "development" | "production";
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Vite's file watcher and HMR (development only; tests turn it off). */
  watch?: boolean;
}

export interface AppServer {
  url: string;
  port: number;
  /** Where the preview server listens: http://host:previewPort (each project's origin is a host name on it). */
  previewUrl: string;
  previewPort: number;
  /** Every project's preview origin as a pattern: http://*.localhost:previewPort, or PREVIEW_ORIGIN. */
  previewOrigins: string;
  /** A project's preview origin: http://<label>.localhost:previewPort, or under PREVIEW_ORIGIN. */
  previewOriginFor(projectId: string): string;
  close(): Promise<void>;
}

export async function startAppServer({
  mode,
  host = "127.0.0.1",
  port = 3000,
  watch = true,
}: AppServerOptions): Promise<AppServer> {
  // BAML logs every prompt and reply at its default level: keep builders' conversations out of the log.
  process.env.BAML_LOG ??= "warn";
  await getDatabase().migrate();
  await warnIfUnisolated();
  const devInProduction = inngestDevInProductionWarning(env());
  if (devInProduction) console.warn(devInProduction);

  const app = express();
  app.disable("x-powered-by");
  // Behind TRUST_PROXY proxies, req.ip and req.protocol come from the hops they append (X-Forwarded-For/-Proto).
  const { TRUST_PROXY } = env();
  if (TRUST_PROXY > 0) app.set("trust proxy", TRUST_PROXY);
  // Headers first, so refusals carry them too; then the cheap refusals, before anything reads a body.
  app.use(makeCspNonce, securityHeaders(mode));
  app.use(refuseCrossOriginWrites);
  app.use(refuseOversizedBodies);
  const httpServer = createServer(app);
  let closeVite = async () => {};

  if (mode === "development") {
    const vite = await import("vite").then((v) =>
      v.createServer({
        server: {
          middlewareMode: true,
          hmr: watch ? { server: httpServer } : false,
          watch: watch ? { ignored: insideAnyOf(unwatchedFolders(env().DYNO_DATA_DIR)) } : null,
        },
        appType: "custom",
      }),
    );
    closeVite = () => vite.close();
    app.use(vite.middlewares);
    app.all(
      "*",
      createRemixHandler({
        build: () => vite.ssrLoadModule("virtual:remix/server-build") as Promise<ServerBuild>,
        mode,
        getLoadContext,
      }),
    );
  } else {
    const buildDir = path.resolve("build");
    const build = (await import(path.join(buildDir, "server/index.js"))) as ServerBuild;
    app.use("/assets", express.static(path.join(buildDir, "client/assets"), { immutable: true, maxAge: "1y" }));
    app.use(express.static(path.join(buildDir, "client"), { maxAge: "1h" }));
    app.all("*", createRemixHandler({ build, mode, getLoadContext }));
  }

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(port, host, () => resolve());
  });
  const address = httpServer.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
  // The only origin /api/inngest registers unless INNGEST_SERVE_ORIGIN says otherwise.
  setListeningAddress({ host, port: address.port });

  let preview;
  try {
    preview = await startPreviewServer({
      host,
      port: previewPortFor(port),
      secret: sessionSecret(),
      // PREVIEW_ORIGIN's wildcard, else http://*.localhost:<its port> (no server registered yet: null here).
      origin: previewOriginTemplate() ?? undefined,
      resolveDirectory: projectPreviewDirectory,
      app: projectPreviewApp,
      frameAncestors: previewFrameAncestors(address.port),
    });
  } catch (error) {
    setListeningAddress(undefined);
    await closeServer(httpServer);
    await closeVite();
    throw new Error(
      `The preview server could not start (${error instanceof Error ? error.message : String(error)}); set PREVIEW_PORT to a free port`,
      { cause: error },
    );
  }
  setRunningPreviewServer({ port: preview.port });
  // Ends runs the engine lost (restarted, gave up while the database was away), now and every RUN_RECONCILE_INTERVAL.
  const reconciler = startRunReconciler(getDatabase().db);

  return {
    url,
    port: address.port,
    previewUrl: preview.url,
    previewPort: preview.port,
    previewOrigins: preview.originSource,
    previewOriginFor: preview.originFor,
    async close() {
      await reconciler.stop();
      // The projects' dev servers end with the app (bubblewrap's --die-with-parent would end them anyway; this logs why).
      await stopAllAppProcesses();
      setRunningPreviewServer(undefined);
      setListeningAddress(undefined);
      await preview.close();
      await closeServer(httpServer);
      await closeVite();
      await closeDemoReplayServer();
      await closeEgressProxies();
      await closeDatabase();
    },
  };
}

/** PREVIEW_PORT, else the app's port + 1; with port 0 (tests), a free port as well. */
function previewPortFor(appPort: number): number {
  const configured = env().PREVIEW_PORT;
  if (configured !== undefined) return configured;
  if (appPort === 0) return 0;
  if (appPort >= 65535) throw new Error(`PORT ${appPort} leaves no PORT + 1 for the preview server`);
  return appPort + 1;
}

/** What loaders and actions get besides the request (see app/load-context.ts). */
function getLoadContext(req: express.Request, res: express.Response): AppLoadContext {
  return {
    clientAddress: req.ip ?? req.socket.remoteAddress ?? "unknown",
    cspNonce: res.locals.cspNonce as string,
    responseClosed: responseClosedSignal(res),
    responseDrained: responseDrainedWaiter(res),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Long-lived requests (SSE, an engine call mid-step) must not hold up shutdown.
    server.closeAllConnections();
  });
}

/** Says at startup, not at the first command, when the agent's commands cannot be isolated. */
async function warnIfUnisolated(): Promise<void> {
  const { SANDBOX_PROVIDER, LOCAL_SANDBOX_ISOLATION } = env();
  if (SANDBOX_PROVIDER !== "local") return;
  // Which resource limits hold each command on this host, and how (cgroups, or rlimits and polling).
  const limits = describeLimitSupport(await localLimitSupport(), sandboxLimits(env()));
  console.log(
    `sandbox limits per project (its commands and app process together):\n${limits.map((line) => `  ${line}`).join("\n")}`,
  );
  const egress = sandboxConfig(env()).egress;
  if (egress && LOCAL_SANDBOX_ISOLATION === "bubblewrap") console.log(await describeEgress(egress));
  if (LOCAL_SANDBOX_ISOLATION === "none") {
    console.warn("sandbox: LOCAL_SANDBOX_ISOLATION=none - the agent's commands run unisolated on this machine.");
    return;
  }
  const isolation = await checkLocalIsolation();
  if (!isolation.available) {
    console.warn(
      `sandbox: command isolation is unavailable (${isolation.reason}). The agent's commands will fail until ` +
        "bubblewrap works (Debian: apt-get install bubblewrap), or set LOCAL_SANDBOX_ISOLATION=none to run them unisolated.",
    );
  }
}
