/**
 * A refused upload's connection (server/body-limit.ts): the 413 goes out at once, and the connection stays while
 * the client is still sending, so a client slow to read (a loaded machine) still gets the answer instead of a reset
 * (ECONNRESET, "fetch failed"); a client that never closes is cut LINGER_MS after the answer.
 */
import net, { type AddressInfo } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LINGER_MS, refuseOversizedBodies } from "./body-limit";

let server: ReturnType<ReturnType<typeof express>["listen"]>;
let port: number;

beforeAll(async () => {
  const app = express();
  app.use(refuseOversizedBodies);
  app.post("*", (_req, res) => res.send("read"));
  server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A raw connection that posts `declared` bytes' worth of headers to /login (limit 64 KiB). */
async function post(declared: number, options: { allowHalfOpen?: boolean } = {}) {
  const socket = net.connect({ port, host: "127.0.0.1", ...options });
  const errors: Error[] = [];
  socket.on("error", (error) => errors.push(error));
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now())));
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.write(
    "POST /login HTTP/1.1\r\nHost: app\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
      `Content-Length: ${declared}\r\n\r\n`,
  );
  return { socket, errors, closed };
}

describe("a refused upload", () => {
  it("keeps the connection for a client still sending after the 413, so it reads the answer late", async () => {
    const { socket, errors, closed } = await post(300 * 1024);
    // A busy client: it reads nothing yet, and goes on sending a little at a time for 3 s.
    socket.pause();
    const chunk = Buffer.alloc(8 * 1024, "a");
    const until = Date.now() + 3_000;
    while (Date.now() < until && errors.length === 0) {
      socket.write(chunk);
      await sleep(250);
    }
    const received: Buffer[] = [];
    socket.on("data", (data: Buffer) => received.push(data));
    socket.resume();
    socket.end();
    await closed;
    expect(errors).toEqual([]);
    expect(Buffer.concat(received).toString()).toMatch(
      /^HTTP\/1\.1 413 [\s\S]*\r\nconnection: close\r\n[\s\S]*Request body too large \(at most 64 KiB\)$/i,
    );
  }, 15_000);

  it("is cut LINGER_MS after the answer when the client never closes", async () => {
    const started = Date.now();
    const { socket, closed } = await post(10 * 1024 * 1024, { allowHalfOpen: true });
    // A client that keeps sending and never closes: the server's reset ends it.
    let open = true;
    void closed.then(() => (open = false));
    while (open && Date.now() - started < LINGER_MS + 5_000) {
      socket.write(Buffer.alloc(1024, "a"));
      await sleep(250);
    }
    const lasted = (await closed) - started;
    expect(lasted).toBeGreaterThanOrEqual(LINGER_MS - 100);
    expect(lasted).toBeLessThan(LINGER_MS + 3_000);
  }, 15_000);
});
