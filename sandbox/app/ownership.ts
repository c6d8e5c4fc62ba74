/**
 * Which Dyno process on this host runs a project's app process, and how the others reach it. With several app
 * replicas on one host, a step, a Stop, a preview request or the Logs view may land on any of them, yet a project has
 * one dev server: the replica that runs it (the owner) holds an abstract unix socket named after the data folder and
 * the project, and answers the others' requests (status, start, restart, stop, logs, log lines, activity) on it.
 *
 * Abstract sockets (Linux) suit this: binding the name is atomic (one owner at a time), and the kernel frees it the
 * moment the owner's process dies, SIGKILL included, so there is no stale lock to clean. They live in the network
 * namespace: the sandbox's own (bubblewrap --unshare-net) cannot see them. Each request carries a key from a file
 * only Dyno's user can read, so another local user cannot drive the apps either.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { dataDirDigest } from "../runtime-dir";

/** Requests and replies are single JSON lines; a log read of 2,000 long lines stays well under this. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** An owner that accepted a request but never answers (hung) counts as gone after this long, except for starts. */
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export type OwnerRequest =
  | { op: "status" }
  | { op: "start" | "restart"; command?: string }
  | { op: "stop"; reason?: string }
  | { op: "logs"; sinceSeq?: number; maxLines?: number }
  | { op: "appendLog"; stream: "system" | "browser"; text: string }
  | { op: "touch" };

export type OwnerReply = { ok: true; value: unknown } | { ok: false; error: string; kind?: string };

/** The abstract socket name of a project's owner: the data folder's digest, then the project id. */
export function ownerAddress(dataDir: string, projectId: string): string {
  return `\0dyno-app/${dataDirDigest(dataDir)}/${projectId}`;
}

/** The data folder's control key, made on first use (mode 0600). */
export function controlKey(dataDir: string): Buffer {
  const file = path.join(dataDir, "apps", ".control-key");
  try {
    return Buffer.from(readFileSync(file, "utf8").trim(), "hex");
  } catch {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, randomBytes(32).toString("hex"), { mode: 0o600, flag: "wx" });
    } catch {
      // Another process made it first: read theirs.
    }
    return Buffer.from(readFileSync(file, "utf8").trim(), "hex");
  }
}

export interface OwnerServer {
  close(): Promise<void>;
}

/**
 * Binds the owner's name and serves requests with `handle`; null when another process holds the name (it owns the
 * app). A request without the right key is refused.
 */
export async function claimOwnership(
  address: string,
  key: Buffer,
  handle: (request: OwnerRequest) => Promise<unknown>,
): Promise<OwnerServer | null> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    readLine(socket, (line) => {
      void answer(line).then((reply) => {
        if (!socket.destroyed) socket.end(`${JSON.stringify(reply)}\n`);
      });
    });
  });
  const answer = async (line: string): Promise<OwnerReply> => {
    let message: { key?: string; request?: OwnerRequest };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return { ok: false, error: "not JSON" };
    }
    const given = Buffer.from(typeof message.key === "string" ? message.key : "", "hex");
    if (given.length !== key.length || !timingSafeEqual(given, key)) return { ok: false, error: "wrong key" };
    try {
      return { ok: true, value: (await handle(message.request!)) ?? null };
    } catch (error) {
      return { ok: false, error: (error as Error).message, kind: (error as Error).name };
    }
  };
  const bound = await new Promise<boolean>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") resolve(false);
      else reject(error);
    });
    server.listen(address, () => resolve(true));
  });
  if (!bound) return null;
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Requests in flight finish (their sockets end after the reply); idle ones go now.
        for (const socket of sockets) if (!socket.readableLength && !socket.writableLength) socket.end();
      }),
  };
}

export class OwnerError extends Error {
  constructor(
    message: string,
    readonly kind?: string,
  ) {
    super(message);
    this.name = kind ?? "OwnerError";
  }
}

/**
 * Sends a request to the project's owner; undefined when there is none (nobody holds the name). An error the owner
 * raised is thrown as an OwnerError with its message.
 */
export function askOwner(
  address: string,
  key: Buffer,
  request: OwnerRequest,
  { signal, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS }: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(address);
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      fn();
    };
    const timer = setTimeout(
      () =>
        done(() => reject(new OwnerError(`the Dyno process running this app did not answer within ${timeoutMs} ms`))),
      timeoutMs,
    );
    const onAbort = () => done(() => resolve(undefined));
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => socket.write(`${JSON.stringify({ key: key.toString("hex"), request })}\n`));
    socket.once("error", (error: NodeJS.ErrnoException) => {
      // No owner: the name is free (ECONNREFUSED) or was never bound (ENOENT is not used by abstract names). An
      // owner that went away with this connection not yet accepted resets it (ECONNRESET): the same as a close
      // without a reply, below.
      if (error.code === "ECONNREFUSED" || error.code === "ENOENT" || error.code === "ECONNRESET")
        done(() => resolve(undefined));
      else done(() => reject(error));
    });
    readLine(socket, (line) => {
      let reply: OwnerReply;
      try {
        reply = JSON.parse(line) as OwnerReply;
      } catch {
        return done(() => reject(new OwnerError("the app's owner sent an unreadable reply")));
      }
      done(() => (reply.ok ? resolve(reply.value) : reject(new OwnerError(reply.error, reply.kind))));
    });
    // The owner closed without a reply: it is going away (or released the app); the caller decides again.
    socket.once("close", () => done(() => resolve(undefined)));
  });
}

/** Calls `onLine` with the first newline-terminated line; a message over the bound ends the connection. */
function readLine(socket: net.Socket, onLine: (line: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer) => {
    const end = chunk.indexOf(0x0a);
    if (end === -1) {
      size += chunk.length;
      if (size > MAX_MESSAGE_BYTES) socket.destroy();
      else chunks.push(chunk);
      return;
    }
    socket.off("data", onData);
    chunks.push(chunk.subarray(0, end));
    onLine(Buffer.concat(chunks).toString("utf8"));
  };
  socket.on("data", onData);
}
