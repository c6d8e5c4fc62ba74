import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { describeSandboxContract } from "./contract";
import { openModalSandbox, type ModalSandboxOptions } from "./modal";
import { SandboxUnavailableError } from "./types";

const tokenId = process.env.MODAL_TOKEN_ID;
const tokenSecret = process.env.MODAL_TOKEN_SECRET;
const haveCredentials = Boolean(tokenId && tokenSecret);

describe("modal provider without credentials", () => {
  it("refuses an egress policy Modal cannot express before reaching Modal", async () => {
    const error = await openModalSandbox({
      projectId: randomUUID(),
      tokenId: "not-a-token",
      tokenSecret: "not-a-secret",
      egress: { mode: "registry", allow: ["git.example.com:22"] },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxUnavailableError);
    expect((error as Error).message).toMatch(/port 443 \(TLS\) only/);
  });

  it("says which variables to set", async () => {
    const error = await openModalSandbox({ projectId: randomUUID() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxUnavailableError);
    expect((error as Error).message).toContain("MODAL_TOKEN_ID");
    expect((error as Error).message).toContain("MODAL_TOKEN_SECRET");
  });
});

// These talk to Modal for real: they need network access and a Modal token.
describe.skipIf(!haveCredentials)("modal provider (set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET to run)", () => {
  describeSandboxContract("modal", () =>
    openModalSandbox({ projectId: randomUUID(), tokenId, tokenSecret, appName: "dyno-tests" }),
  );

  it("reattaches to a running sandbox by id and gives a tunnel URL for the preview", async () => {
    const projectId = randomUUID();
    const first = await openModalSandbox({ projectId, tokenId, tokenSecret, appName: "dyno-tests" });
    try {
      await first.writeFile("kept.txt", "still here");
      const again = await openModalSandbox({
        projectId,
        sandboxId: first.id,
        tokenId,
        tokenSecret,
        appName: "dyno-tests",
      });
      expect(again.id).toBe(first.id);
      expect((await again.readFile("kept.txt")).content).toBe("still here");
      const preview = await again.preview();
      expect(preview.kind).toBe("url");
    } finally {
      await first.destroy();
    }
    const replaced = await openModalSandbox({
      projectId,
      sandboxId: first.id,
      tokenId,
      tokenSecret,
      appName: "dyno-tests",
    });
    try {
      expect(replaced.id).not.toBe(first.id);
    } finally {
      await replaced.destroy();
    }
  }, 180_000);

  const open = (projectId: string, extra: Partial<ModalSandboxOptions> = {}) =>
    openModalSandbox({ projectId, tokenId, tokenSecret, appName: "dyno-tests", ...extra });

  it("runs the app process detached in the box, reached through the tunnel, shared by every object of the box", async () => {
    const projectId = randomUUID();
    const box = await open(projectId, { app: { restartBackoffMs: [500] } });
    try {
      await box.writeFile(
        "server.js",
        'require("http").createServer((q, r) => r.end("app " + process.env.PORT)).listen(Number(process.env.PORT), "0.0.0.0");',
      );
      const started = await box.app.start({ command: "node server.js" });
      expect(started).toMatchObject({ state: "running", port: 3000, command: "node server.js" });
      const endpoint = await box.app.endpoint();
      expect(endpoint?.kind).toBe("url");
      const url = endpoint?.kind === "url" ? endpoint.url : "";
      expect(await (await fetch(url)).text()).toBe("app 3000");

      // The state lives in the box: another object (another step, another replica) sees the same app.
      const again = await open(projectId, { sandboxId: box.id });
      expect(await again.app.status()).toMatchObject({ state: "running", startedAt: started.startedAt });
      const logs = await again.app.logs();
      expect(logs.lines.map((line) => line.text)).toContain("listening on port 3000");

      expect(await again.app.stop("test over")).toMatchObject({ state: "stopped", reason: "test over" });
      expect(await box.app.endpoint()).toBeNull();
    } finally {
      await box.destroy();
    }
  }, 240_000);

  it("bridges the tunnelled port to a dev server on localhost:5173 (Vite's default)", async () => {
    const box = await open(randomUUID());
    try {
      await box.writeFile(
        "vite-like.js",
        'require("http").createServer((q, r) => r.end("vite-like")).listen(5173, "localhost");',
      );
      expect(await box.app.start({ command: "node vite-like.js" })).toMatchObject({ state: "running", port: 5173 });
      const endpoint = await box.app.endpoint();
      expect(await (await fetch(endpoint?.kind === "url" ? endpoint.url : "")).text()).toBe("vite-like");
    } finally {
      await box.destroy();
    }
  }, 240_000);

  it("with SANDBOX_EGRESS=registry reaches the npm registry and no other host", async () => {
    const box = await open(randomUUID(), { egress: { mode: "registry" } });
    try {
      const view = await box.exec("npm view is-number version", { timeoutMs: 60_000 });
      expect(view.exitCode).toBe(0);
      expect(view.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
      const other = await box.exec(
        "node -e \"fetch('https://example.com').then(() => process.exit(0), () => process.exit(7))\"",
        { timeoutMs: 60_000 },
      );
      expect(other.exitCode).not.toBe(0);
      // Modal reports no refusals: nothing to attribute (decision 023).
      expect(other.egressRefused ?? []).toEqual([]);
    } finally {
      await box.destroy();
    }
  }, 240_000);

  it("with SANDBOX_EGRESS=off reaches nothing, and the app's tunnel still serves", async () => {
    const box = await open(randomUUID(), { egress: { mode: "off" } });
    try {
      const view = await box.exec("npm view is-number version --fetch-retries=0", { timeoutMs: 60_000 });
      expect(view.exitCode).not.toBe(0);
      await box.writeFile(
        "server.js",
        'require("http").createServer((q, r) => r.end("offline app")).listen(Number(process.env.PORT), "0.0.0.0");',
      );
      expect((await box.app.start({ command: "node server.js" })).state).toBe("running");
      const endpoint = await box.app.endpoint();
      expect(await (await fetch(endpoint?.kind === "url" ? endpoint.url : "")).text()).toBe("offline app");
    } finally {
      await box.destroy();
    }
  }, 240_000);
});
