import http from "node:http";
import type { AddressInfo } from "node:net";
import v8 from "node:v8";
import vm from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { responseClosedSignal } from "./load-context";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

let server: http.Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/**
 * A server whose handler starts a response and listens on its signal, then
 * lets go of it: only what responseClosedSignal itself keeps can fire it.
 */
async function openResponse() {
  let aborted = false;
  let response!: http.ServerResponse;
  const handled = new Promise<void>((resolve) => {
    server = http.createServer((_req, res) => {
      response = res;
      responseClosedSignal(res).addEventListener("abort", () => (aborted = true));
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write("data: {}\n\n");
      resolve();
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const { port } = server!.address() as AddressInfo;
  const client = http.get({ host: "127.0.0.1", port, agent: false });
  client.on("error", () => {});
  await handled;
  return { client, response, aborted: () => aborted };
}

describe("responseClosedSignal", () => {
  it("aborts when the client drops the connection, even after full collections", async () => {
    const open = await openResponse();
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
    gc();
    expect(open.aborted()).toBe(false);
    open.client.destroy();
    await expect.poll(open.aborted).toBe(true);
  });

  it("aborts when the response ends", async () => {
    const open = await openResponse();
    open.response.end();
    await expect.poll(open.aborted).toBe(true);
  });

  it("is aborted at once for a response already closed", async () => {
    const open = await openResponse();
    open.client.destroy();
    await new Promise<void>((resolve) =>
      open.response.closed ? resolve() : open.response.once("close", () => resolve()),
    );
    expect(responseClosedSignal(open.response).aborted).toBe(true);
  });
});
