/**
 * The one URL the Inngest engine may call the app at. The SDK would build the
 * URL it registers from the sync request's Host header and query string, so
 * an unsigned `PUT /api/inngest` naming another host would make the engine
 * send signed step calls (prompts, user, project and run ids) there. Instead
 * the app registers INNGEST_SERVE_ORIGIN, else the address its server listens
 * on, and ignores what the request names.
 */
import { env, WILDCARD_HOSTS, type Env } from "./env.server";

/** Where app/routes/api.inngest.ts serves. */
export const INNGEST_SERVE_PATH = "/api/inngest";

/**
 * The app server's listening address, recorded by server/app.ts (with PORT=0
 * it is known only after listen). On globalThis because Vite's dev server
 * loads routes in a module graph of its own (see app/preview.server.ts).
 */
export interface ListeningAddress {
  host: string;
  port: number;
}
const registry = globalThis as typeof globalThis & { __dynoListeningAddress?: ListeningAddress };

export function setListeningAddress(address: ListeningAddress | undefined): void {
  registry.__dynoListeningAddress = address;
}

/** INNGEST_SERVE_ORIGIN, else http://<listening host>:<port> (a wildcard host as loopback); undefined before listen. */
export function inngestServeOrigin(config: Pick<Env, "INNGEST_SERVE_ORIGIN"> = env()): string | undefined {
  if (config.INNGEST_SERVE_ORIGIN) return config.INNGEST_SERVE_ORIGIN;
  const address = registry.__dynoListeningAddress;
  if (!address) return undefined;
  return `http://${reachableHost(address.host)}:${address.port}`;
}

function reachableHost(host: string): string {
  if (WILDCARD_HOSTS.has(host)) return host.includes(":") ? "[::1]" : "127.0.0.1";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * The sync request the SDK is given in place of the one received: the app's
 * own URL, so the registered URL never takes a host, path or query from the
 * sender (a query such as `?probe=trust` would reach every later step call).
 * Only the deploy id a dashboard-started sync names is kept. The sync kind
 * header is dropped: an in-band sync takes its URL from the request body,
 * which dev mode does not authenticate; out-of-band, the SDK registers itself.
 */
export function ownSyncRequest(request: Request, origin: string): Request {
  const received = new URL(request.url);
  const own = new URL(INNGEST_SERVE_PATH, origin);
  const deployId = received.searchParams.get("deployId");
  if (deployId) own.searchParams.set("deployId", deployId);
  const headers = new Headers(request.headers);
  headers.set("host", own.host);
  headers.delete("x-inngest-sync-kind");
  return new Request(own, { method: "PUT", headers, signal: request.signal });
}
