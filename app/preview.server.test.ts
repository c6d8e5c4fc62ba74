import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// The app reads its environment once, on first use: set it before loading the module.
const dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-preview-url-"));
Object.assign(process.env, {
  DYNO_DATA_DIR: dataDir,
  PREVIEW_ORIGIN: "https://*.preview.example.test/",
  SESSION_SECRET: "preview-url-test-secret-0123456789abcdef",
  MODAL_TOKEN_ID: "",
  MODAL_TOKEN_SECRET: "",
});
const { existingLocalWorkspace, previewFrameSource, previewLabel, previewUrlFor, runningPreviewServer } =
  await import("./preview.server");

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

const request = new Request("http://127.0.0.1:3000/projects/x");

describe("previewUrlFor", () => {
  it("uses PREVIEW_ORIGIN's wildcard when set, with the project's label", async () => {
    const id = randomUUID();
    mkdirSync(path.join(dataDir, "workspaces", id), { recursive: true });
    writeFileSync(path.join(dataDir, "workspaces", id, "index.html"), "<h1>hi</h1>");
    expect(runningPreviewServer()).toBeUndefined();
    const url = await previewUrlFor(request, { id, sandboxProvider: "local", sandboxId: id });
    expect(url).toBe(`https://${previewLabel("preview-url-test-secret-0123456789abcdef", id)}.preview.example.test/`);
    // The builder may frame every project's origin, and only those.
    expect(previewFrameSource()).toBe("https://*.preview.example.test");
  });

  it("frames a workspace without index.html once it has an app to run (a dev script)", async () => {
    const id = randomUUID();
    const folder = path.join(dataDir, "workspaces", id);
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, "package.json"), JSON.stringify({ scripts: { build: "vite build" } }));
    expect(await previewUrlFor(request, { id, sandboxProvider: "local", sandboxId: id })).toBeNull();
    writeFileSync(path.join(folder, "package.json"), "{not json");
    expect(await previewUrlFor(request, { id, sandboxProvider: "local", sandboxId: id })).toBeNull();
    writeFileSync(path.join(folder, "package.json"), JSON.stringify({ scripts: { dev: "vite" } }));
    expect(await previewUrlFor(request, { id, sandboxProvider: "local", sandboxId: id })).toBe(
      `https://${previewLabel("preview-url-test-secret-0123456789abcdef", id)}.preview.example.test/`,
    );
  });

  it("is null while the project has no workspace, and creates none", async () => {
    const id = randomUUID();
    expect(await previewUrlFor(request, { id, sandboxProvider: null, sandboxId: null })).toBeNull();
    expect(await previewUrlFor(request, { id, sandboxProvider: "local", sandboxId: id })).toBeNull();
    expect(existsSync(path.join(dataDir, "workspaces", id))).toBe(false);
  });

  it("is null until the workspace has an index.html", async () => {
    const id = randomUUID();
    mkdirSync(path.join(dataDir, "workspaces", id, "index.html", "not-a-file"), { recursive: true });
    expect(await previewUrlFor(request, { id, sandboxProvider: "local", sandboxId: id })).toBeNull();
    const other = randomUUID();
    mkdirSync(path.join(dataDir, "workspaces", other), { recursive: true });
    writeFileSync(path.join(dataDir, "workspaces", other, "notes.txt"), "no page yet");
    expect(await previewUrlFor(request, { id: other, sandboxProvider: "local", sandboxId: other })).toBeNull();
  });

  it("is null, not an error, when a Modal project's sandbox cannot be reached", async () => {
    const id = randomUUID();
    expect(await previewUrlFor(request, { id, sandboxProvider: "modal", sandboxId: "sb-123" })).toBeNull();
  });
});

describe("existingLocalWorkspace", () => {
  it("finds only existing folders of uuid-named projects", async () => {
    const id = randomUUID();
    expect(await existingLocalWorkspace(id)).toBeNull();
    mkdirSync(path.join(dataDir, "workspaces", id), { recursive: true });
    expect(await existingLocalWorkspace(id)).toBe(path.join(path.resolve(dataDir), "workspaces", id));
    expect(await existingLocalWorkspace("../workspaces")).toBeNull();
  });
});
