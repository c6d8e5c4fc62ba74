/**
 * The egress proxy: an HTTP proxy listening on a unix socket, one per project, that is the sandbox's only way out.
 * It takes CONNECT host:port (what npm, pip and curl send for https) and absolute-form plain-HTTP requests, allows
 * only what the policy allows (policy.ts), resolves names itself and connects to the very address it checked (a
 * second lookup could answer differently: DNS rebinding). Every refusal is kept (a bounded log with sequence
 * numbers, so a command can ask for the refusals made while it ran) and told to listeners (the app process's log).
 * It adds nothing of its own to what passes through: no credentials, no proxy headers.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { chmod, mkdir, unlink } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import type { EgressRefusal } from "../types";
import { checkTarget, refuseAddress, type EgressPolicy } from "./policy";

export interface ResolvedAddress {
  address: string;
  family: number;
}

export interface EgressProxyOptions {
  socketPath: string;
  policy: EgressPolicy;
  /** Name resolution; default the system's (getaddrinfo). */
  lookup?: (host: string) => Promise<ResolvedAddress[]>;
  /** Open client connections at most (each tunnel is one). Default 256. */
  maxConnections?: number;
  /** Resolving and connecting to the destination, each. Default 15 s. */
  connectTimeoutMs?: number;
  /** A tunnel or request with no traffic this long is closed. Default 5 min. */
  idleTimeoutMs?: number;
  /** Refusals kept for refusalsSince. Default 500. */
  maxRefusals?: number;
}

export interface RecordedRefusal extends EgressRefusal {
  seq: number;
}

const HOP_BY_HOP = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

async function systemLookup(host: string): Promise<ResolvedAddress[]> {
  return dnsLookup(host, { all: true, verbatim: true });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${Math.round(ms / 1000)} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** host:port of a CONNECT request line ("example.com:443", "[::1]:443"); undefined when it is anything else. */
export function parseConnectTarget(target: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/?#@[\]]+):(\d{1,5})$/.exec(target);
  if (!match?.[1] || !match[2]) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  const host = match[1].startsWith("[") ? match[1].slice(1, -1) : match[1];
  return { host, port };
}

type Destination =
  | { ok: true; addresses: ResolvedAddress[]; host: string }
  | { ok: false; status: number; reason: string; refused: boolean };

export class EgressProxy {
  private readonly server: http.Server;
  private policy: EgressPolicy;
  private readonly lookup: (host: string) => Promise<ResolvedAddress[]>;
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly maxRefusals: number;
  private readonly refusals: RecordedRefusal[] = [];
  private lastSeq = 0;
  private readonly listeners = new Set<(refusal: EgressRefusal) => void>();
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  constructor(readonly options: EgressProxyOptions) {
    this.policy = options.policy;
    this.lookup = options.lookup ?? systemLookup;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 15_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 5 * 60_000;
    this.maxRefusals = options.maxRefusals ?? 500;
    // Node's own parser, strict (no insecureHTTPParser): conflicting Content-Length / Transfer-Encoding, bare CR
    // and other smuggling shapes are refused before any of this code sees them.
    this.server = http.createServer({ requestTimeout: 60_000, headersTimeout: 30_000 });
    this.server.maxConnections = options.maxConnections ?? 256;
    this.server.on("connection", (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    this.server.on("connect", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      void this.handleConnect(req, socket, head);
    });
    this.server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      void this.handleRequest(req, res);
    });
    this.server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
      writeRaw(socket, 501, "dyno egress: protocol upgrades through the proxy are not supported; use CONNECT\n");
    });
    this.server.on("clientError", (error: NodeJS.ErrnoException, socket: net.Socket) => {
      writeRaw(socket, 400, `dyno egress: malformed request (${error.code ?? error.message})\n`);
    });
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  get currentPolicy(): EgressPolicy {
    return this.policy;
  }

  /** Later connections follow this policy (tunnels already open stay open). */
  setPolicy(policy: EgressPolicy): void {
    this.policy = policy;
  }

  async listen(): Promise<void> {
    const folder = path.dirname(this.socketPath);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    // The file name carries this process's pid: a file already there is a leftover of a process that had it before.
    await unlink(this.socketPath).catch(() => {});
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.socketPath, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    // Only this user (the sandbox's commands get it through a bind mount, not through the folder).
    await chmod(this.socketPath, 0o600).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await done;
    await unlink(this.socketPath).catch(() => {});
  }

  /** The sequence number of the latest refusal (0 before any): pass to refusalsSince after a command. */
  get seq(): number {
    return this.lastSeq;
  }

  /** Refusals recorded after `seq` (oldest first; as many as the bounded log still holds). */
  refusalsSince(seq: number): RecordedRefusal[] {
    return this.refusals.filter((refusal) => refusal.seq > seq);
  }

  /** Calls `listener` on every refusal from now on; returns the unsubscribe. */
  onRefusal(listener: (refusal: EgressRefusal) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private record(host: string, port: number, reason: string): EgressRefusal {
    const refusal: RecordedRefusal = {
      seq: ++this.lastSeq,
      host: host.slice(0, 255),
      port,
      reason,
      at: new Date().toISOString(),
    };
    this.refusals.push(refusal);
    if (this.refusals.length > this.maxRefusals) this.refusals.splice(0, this.refusals.length - this.maxRefusals);
    const { seq: _seq, ...plain } = refusal;
    for (const listener of this.listeners) {
      try {
        listener(plain);
      } catch {
        // A listener's failure is its own; the proxy carries on.
      }
    }
    return plain;
  }

  private refusalText(host: string, port: number, reason: string): string {
    const allowed = this.policy.allow.map((entry) => `${entry.host}:${entry.port}`).join(", ");
    return `dyno egress: refused ${host}:${port} (${reason}). The sandbox may reach only: ${allowed}\n`;
  }

  /** Checks host:port, resolves it, and checks every address; refusals are recorded here. */
  private async destination(rawHost: string, port: number): Promise<Destination> {
    const decision = checkTarget(this.policy, rawHost, port);
    if (!decision.allowed) {
      this.record(rawHost, port, decision.reason);
      return { ok: false, status: 403, reason: this.refusalText(rawHost, port, decision.reason), refused: true };
    }
    const { host } = decision;
    let addresses: ResolvedAddress[];
    if (net.isIP(host)) addresses = [{ address: host, family: net.isIP(host) }];
    else {
      try {
        addresses = await withTimeout(this.lookup(host), this.connectTimeoutMs, `resolving ${host}`);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        return { ok: false, status: 502, reason: `dyno egress: could not resolve ${host} (${code})\n`, refused: false };
      }
    }
    if (!addresses.length) {
      return { ok: false, status: 502, reason: `dyno egress: ${host} has no address\n`, refused: false };
    }
    // Every address must pass: a name whose DNS mixes a public address with 127.0.0.1 is not to be trusted.
    for (const { address } of addresses) {
      const reason = refuseAddress(this.policy, address, port);
      if (reason) {
        this.record(rawHost, port, reason);
        return { ok: false, status: 403, reason: this.refusalText(rawHost, port, reason), refused: true };
      }
    }
    // IPv4 first: hosts without IPv6 routes are common, and trying v6 first would cost a timeout there.
    const ordered = [...addresses.filter((a) => a.family === 4), ...addresses.filter((a) => a.family !== 4)];
    return { ok: true, addresses: ordered, host };
  }

  /** Connects to the first of the checked addresses that answers. */
  private async connectTo(addresses: ResolvedAddress[], port: number): Promise<net.Socket> {
    let lastError: Error | undefined;
    for (const { address } of addresses) {
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect({ host: address, port });
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error(`connecting to ${address}:${port} timed out`));
          }, this.connectTimeoutMs);
          socket.once("connect", () => {
            clearTimeout(timer);
            socket.removeAllListeners("error");
            resolve(socket);
          });
          socket.once("error", (error) => {
            clearTimeout(timer);
            reject(error);
          });
        });
      } catch (error) {
        lastError = error as Error;
      }
    }
    throw lastError ?? new Error("no address to connect to");
  }

  private async handleConnect(req: http.IncomingMessage, client: net.Socket, head: Buffer): Promise<void> {
    client.on("error", () => client.destroy());
    const target = parseConnectTarget(req.url ?? "");
    if (!target) {
      const host = (req.url ?? "").slice(0, 255);
      this.record(host, 0, "not a host:port");
      writeRaw(client, 400, `dyno egress: CONNECT needs host:port, got ${JSON.stringify(host)}\n`);
      return;
    }
    const destination = await this.destination(target.host, target.port);
    if (!destination.ok) {
      writeRaw(client, destination.status, destination.reason);
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await this.connectTo(destination.addresses, target.port);
    } catch (error) {
      writeRaw(
        client,
        502,
        `dyno egress: could not connect to ${destination.host}:${target.port} (${(error as Error).message})\n`,
      );
      return;
    }
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    // One side closing ends the other once what is in flight is written (destroy would drop a download's tail).
    client.on("close", () => upstream.end());
    upstream.on("close", () => client.end());
    for (const socket of [client, upstream]) {
      socket.setTimeout(this.idleTimeoutMs, () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private async handleRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reply = (status: number, text: string): void => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end(text);
    };
    let url: URL;
    try {
      url = new URL(req.url ?? "");
    } catch {
      // Origin-form ("/path"): someone spoke to the proxy as if it were a server. The Host header never decides.
      return reply(400, "dyno egress: this is a proxy; send an absolute http:// URL, or CONNECT host:port for https\n");
    }
    if (url.protocol !== "http:") {
      return reply(400, `dyno egress: only http:// URLs are forwarded as requests (use CONNECT for ${url.protocol})\n`);
    }
    if (url.username || url.password) {
      return reply(400, "dyno egress: URLs with credentials are not forwarded\n");
    }
    const port = url.port ? Number(url.port) : 80;
    // The request line's host decides (URL gives IPv6 in brackets).
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const destination = await this.destination(host, port);
    if (!destination.ok) return reply(destination.status, destination.reason);

    // Connection may name more hop-by-hop headers.
    const named = new Set(
      String(req.headers.connection ?? "")
        .split(",")
        .map((token) => token.trim().toLowerCase()),
    );
    const forwarded = headerPairs(req.rawHeaders)
      .filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase()) && !named.has(name.toLowerCase()))
      .flat();
    forwarded.push("Host", url.host);

    let upstreamSocket: net.Socket;
    try {
      upstreamSocket = await this.connectTo(destination.addresses, port);
    } catch (error) {
      return reply(
        502,
        `dyno egress: could not connect to ${destination.host}:${port} (${(error as Error).message})\n`,
      );
    }
    const upstream = http.request({
      createConnection: () => upstreamSocket,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers: forwarded,
      setHost: false,
    });
    upstreamSocket.setTimeout(this.idleTimeoutMs, () => upstream.destroy(new Error("idle")));
    upstream.on("response", (answer) => {
      const back = headerPairs(answer.rawHeaders)
        .filter(([name]) => !["transfer-encoding", "connection", "keep-alive"].includes(name.toLowerCase()))
        .flat();
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, back);
      answer.pipe(res);
    });
    upstream.on("error", (error) => reply(502, `dyno egress: ${destination.host}:${port} failed (${error.message})\n`));
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  }
}

/** [name, value] pairs of Node's rawHeaders list. */
function headerPairs(raw: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] ?? "", raw[i + 1] ?? ""]);
  return pairs;
}

/** A whole response on a raw socket (CONNECT, parse errors), then close. */
function writeRaw(socket: net.Socket, status: number, text: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = Buffer.from(text, "utf8");
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}\r\n` +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${body.length}\r\n` +
      (status === 403 ? "X-Dyno-Egress: refused\r\n" : "") +
      "Connection: close\r\n\r\n" +
      text,
  );
}

export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const proxy = new EgressProxy(options);
  await proxy.listen();
  return proxy;
}
