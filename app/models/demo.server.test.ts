import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMOS } from "../../inngest/agent/demo";
import { demoUnavailableReason } from "./demo.server";

let registry: Server;
let registryUrl: string;

beforeAll(async () => {
  // Stands for a private registry that does not know /-/ping: any answer means it is there.
  registry = createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => registry.listen(0, "127.0.0.1", resolve));
  registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}/`;
});

afterAll(() => new Promise((resolve) => registry.close(resolve)));

describe("demoUnavailableReason", () => {
  it("lets the todo-page demo run anywhere: it needs no network", async () => {
    expect(DEMOS["todo-page"].needsRegistry).toBe(false);
    expect(await demoUnavailableReason(DEMOS["todo-page"], { egress: "off" })).toBeNull();
  });

  it("lets the Vite demo run when the registry answers", async () => {
    expect(
      await demoUnavailableReason(DEMOS["vite-react"], { egress: "registry", provider: "local", registryUrl }),
    ).toBe(null);
  });

  it("says plainly when the sandbox has no network", async () => {
    expect(await demoUnavailableReason(DEMOS["vite-react"], { egress: "off", provider: "local", registryUrl })).toBe(
      "This demo installs packages from the npm registry, but the sandbox has no network here (SANDBOX_EGRESS=off). " +
        "Run the todo-page demo instead: it needs no network.",
    );
  });

  it("says plainly when the registry cannot be reached, naming it and why", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = `http://127.0.0.1:${port}/`;
    expect(
      await demoUnavailableReason(DEMOS["vite-react"], {
        egress: "registry",
        provider: "local",
        registryUrl: unreachable,
      }),
    ).toBe(
      `This demo installs packages from ${unreachable}, which this server cannot reach (ECONNREFUSED). ` +
        "Run the todo-page demo instead: it needs no network.",
    );
  });
});
