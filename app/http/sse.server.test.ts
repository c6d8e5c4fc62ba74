/**
 * The shared SSE plumbing under a client that stops reading: Remix writes a
 * streamed body to the socket without waiting for it to drain
 * (writeReadableStreamToWritable, as server/remix-handler.ts uses it), so
 * without `drained` a stream would read its source as fast as it can and pile
 * everything up in the response's buffer.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { writeReadableStreamToWritable } from "@remix-run/node";
import { afterEach, describe, expect, it } from "vitest";
import { responseDrainedWaiter } from "../load-context";
import { openSseStreams, sseResponse } from "./sse.server";

const MESSAGE = `data: ${"x".repeat(64 * 1024)}\n\n`;
/** A cap on what the source makes, so a broken stream ends instead of filling memory. */
const CAP = 2000;

let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** Serves one SSE response from a 64 KiB-message source and counts the messages it made. */
async function serve({ withDrained }: { withDrained: boolean }) {
  const made = { count: 0, buffered: 0 };
  server = http.createServer((req, res) => {
    const closed = new AbortController();
    res.once("close", () => closed.abort());
    const response = sseResponse({
      kind: "events",
      signal: closed.signal,
      drained: withDrained ? responseDrainedWaiter(res) : undefined,
      heartbeatMs: 60_000,
      heartbeat: "event: heartbeat\ndata: {}\n\n",
      async next() {
        made.buffered = Math.max(made.buffered, res.writableLength);
        if (made.count >= CAP) return null;
        made.count += 1;
        return [MESSAGE];
      },
    });
    res.writeHead(200, Object.fromEntries(response.headers));
    void writeReadableStreamToWritable(response.body!, res).catch(() => {});
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return { made, port: (server.address() as AddressInfo).port };
}

/** A client that reads the first bytes and then stops reading (a stalled tab), then later reads everything. */
function stalledClient(port: number) {
  return new Promise<http.IncomingMessage>((resolve, reject) => {
    const request = http.get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
      res.once("data", () => {
        res.pause();
        resolve(res);
      });
    });
    request.on("error", reject);
  });
}

describe("sseResponse with a client that stops reading", () => {
  it("reads its source only as fast as the socket drains", async () => {
    const { made, port } = await serve({ withDrained: true });
    const before = openSseStreams("events");
    const client = await stalledClient(port);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // What the kernel's socket buffers hold (a few MiB on loopback) plus one message, not everything the source has.
    expect(made.count).toBeLessThan(300);
    expect(made.buffered).toBeLessThan(1024 * 1024);

    // Reading again, the client gets the rest, and the stream ends and is counted closed.
    let bytes = 0;
    client.on("data", (chunk: Buffer) => (bytes += chunk.length));
    client.resume();
    await new Promise((resolve) => client.once("end", resolve));
    expect(made.count).toBe(CAP);
    // (The first bytes were read before the stall.)
    expect(bytes).toBeGreaterThan((CAP - 2) * MESSAGE.length);
    await expect.poll(() => openSseStreams("events")).toBe(before);
  });

  it("without the drain wait, Remix's writer pulls everything into the response's buffer (why the wait exists)", async () => {
    const { made, port } = await serve({ withDrained: false });
    const client = await stalledClient(port);
    await expect.poll(() => made.count, { timeout: 10_000 }).toBe(CAP);
    expect(made.buffered).toBeGreaterThan(16 * 1024 * 1024);
    client.destroy();
  });
});
