/**
 * The preview and download as the app serves them: the real app server (Vite
 * dev mode, Remix routes, the database) with its preview server beside it.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, existsSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projects } from "../db/schema";
import { openLocalSandbox } from "../sandbox";
import { signedInCookie } from "../tests/support/accounts";
import { reserveTestDatabase, type ReservedDatabase } from "../tests/support/database";
import { createBuilder } from "../tests/support/fixtures";
import { raw } from "../tests/support/preview-request";
import type { AppServer } from "./app";
import { REPORT_SCRIPT_TAG } from "./preview/report";

describe("the app's preview server and zip download", () => {
  let reserved: ReservedDatabase;
  let dataDir: string;
  let app: AppServer | undefined;
  let closed = false;
  // Loaded after the environment is set: the app reads it once.
  let mod: {
    getDatabase: typeof import("../db").getDatabase;
    previewUrlFor: typeof import("../app/preview.server").previewUrlFor;
    previewLabel: typeof import("../app/preview.server").previewLabel;
    runningPreviewServer: typeof import("../app/preview.server").runningPreviewServer;
    sessionSecret: typeof import("../app/auth/secret.server").sessionSecret;
  };

  beforeAll(async () => {
    reserved = await reserveTestDatabase();
    dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-app-preview-"));
    Object.assign(process.env, reserved.env, {
      DYNO_DATA_DIR: dataDir,
      SANDBOX_PROVIDER: "local",
      LOCAL_SANDBOX_ISOLATION: "none",
      INNGEST_DEV: "1",
    });
    delete process.env.PREVIEW_PORT;
    delete process.env.PREVIEW_ORIGIN;
    const { startAppServer } = await import("./app");
    app = await startAppServer({ mode: "development", port: 0, watch: false });
    const preview = await import("../app/preview.server");
    mod = {
      getDatabase: (await import("../db")).getDatabase,
      previewUrlFor: preview.previewUrlFor,
      previewLabel: preview.previewLabel,
      runningPreviewServer: preview.runningPreviewServer,
      sessionSecret: (await import("../app/auth/secret.server")).sessionSecret,
    };
  });

  afterAll(async () => {
    if (!closed) await app?.close();
    await reserved?.release();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A builder's project with files in its local workspace, as a run would leave it. */
  async function projectWithFiles(files: Record<string, string>, title = "Todo Page") {
    const { db } = mod.getDatabase();
    const builder = await createBuilder(db, { title });
    const sandbox = await openLocalSandbox({ dataDir, projectId: builder.project.id, isolation: "none" });
    for (const [file, content] of Object.entries(files)) await sandbox.writeFile(file, content);
    const [project] = await db
      .update(projects)
      .set({ sandboxProvider: sandbox.provider, sandboxId: sandbox.id })
      .where(eq(projects.id, builder.project.id))
      .returning();
    return { user: builder.user, project: project! };
  }

  it("starts the preview server on a port of its own and registers it for the routes", () => {
    expect(app!.previewPort).toBeGreaterThan(0);
    expect(app!.previewPort).not.toBe(app!.port);
    expect(app!.previewUrl).toBe(`http://127.0.0.1:${app!.previewPort}`);
    expect(mod.runningPreviewServer()).toEqual({ port: app!.previewPort });
  });

  /** A GET of a preview URL, sent to the listener with the URL's host: Node may not resolve *.localhost. */
  const open = (url: string) => {
    const { host, pathname } = new URL(url);
    return raw({ port: app!.previewPort }, host, pathname);
  };

  it("gives no preview URL for a project with no workspace, and creates none", async () => {
    const { db } = mod.getDatabase();
    const { project } = await createBuilder(db);
    const request = new Request(`${app!.url}/projects/${project.id}`);
    expect(await mod.previewUrlFor(request, project)).toBeNull();
    // Its link, if someone made one, finds nothing either.
    const res = await open(
      `http://${mod.previewLabel(mod.sessionSecret(), project.id)}.localhost:${app!.previewPort}/`,
    );
    expect(res.status).toBe(404);
    expect(existsSync(path.join(dataDir, "workspaces", project.id))).toBe(false);
  });

  it("links a project's preview on an origin of its own under localhost at the preview port, and serves it there", async () => {
    const { project } = await projectWithFiles({ "index.html": "<title>Todos</title>", "app.js": "1" });
    const url = await mod.previewUrlFor(new Request(`${app!.url}/projects/${project.id}`), project);
    const label = mod.previewLabel(mod.sessionSecret(), project.id);
    expect(url).toBe(`http://${label}.localhost:${app!.previewPort}/`);
    expect(app!.previewOriginFor(project.id)).toBe(`http://${label}.localhost:${app!.previewPort}`);
    // Whatever host the builder was opened on: *.localhost is loopback in every browser.
    const viaLocalhost = await mod.previewUrlFor(
      new Request(`http://localhost:${app!.port}/projects/${project.id}`),
      project,
    );
    expect(viaLocalhost).toBe(url);

    const page = await open(url!);
    expect(page.status).toBe(200);
    expect(page.body.toString()).toBe(`${REPORT_SCRIPT_TAG}<title>Todos</title>`);
    expect(page.headers["access-control-allow-origin"]).toBeUndefined();
    expect(page.headers["content-security-policy"]).toBe(
      `frame-ancestors localhost:${app!.port} 127.0.0.1:${app!.port}`,
    );
    expect(new URL(url!).origin).not.toBe(new URL(app!.url).origin);
    // The listener's own address names no project.
    expect((await raw({ port: app!.previewPort }, new URL(app!.previewUrl).host, "/")).status).toBe(404);
  });

  it("takes a page's error report on the project's origin (the app process stand-in keeps no log yet)", async () => {
    const { project } = await projectWithFiles({ "index.html": "<p>hi</p>" });
    const { host } = new URL((await mod.previewUrlFor(new Request(`${app!.url}/`), project))!);
    const res = await raw(
      { port: app!.previewPort },
      host,
      "/__dyno/errors",
      "POST",
      { "Content-Type": "application/json", Origin: `http://${host}` },
      JSON.stringify({ kind: "error", message: "boom" }),
    );
    expect(res.status).toBe(204);
  });

  it("does not serve a workspace whose project row is gone", async () => {
    const { project } = await projectWithFiles({ "index.html": "orphan" });
    const url = await mod.previewUrlFor(new Request(`${app!.url}/`), project);
    expect((await open(url!)).status).toBe(200);
    await mod.getDatabase().db.delete(projects).where(eq(projects.id, project.id));
    expect((await open(url!)).status).toBe(404);
  });

  it("downloads the project as a zip for its builder only", async () => {
    const { user, project } = await projectWithFiles(
      { "index.html": "<h1>Todos</h1>", "src/app.js": "export {};\n" },
      "Todo Page: v2",
    );
    const download = `${app!.url}/projects/${project.id}/download`;

    const anonymous = await fetch(download, { redirect: "manual" });
    expect(anonymous.status).toBe(302);
    expect(anonymous.headers.get("location")).toMatch(/^\/login\?/);

    const cookie = await signedInCookie(user.id);
    const res = await fetch(download, { headers: { Cookie: cookie } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/zip");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="todo-page-v2.zip"');
    const entries = unzipSync(new Uint8Array(await res.arrayBuffer()));
    expect(Object.keys(entries).sort()).toEqual(["todo-page-v2/index.html", "todo-page-v2/src/app.js"]);
    expect(new TextDecoder().decode(entries["todo-page-v2/index.html"])).toBe("<h1>Todos</h1>");

    const stranger = await createBuilder(mod.getDatabase().db);
    const strangerCookie = await signedInCookie(stranger.user.id);
    expect((await fetch(download, { headers: { Cookie: strangerCookie } })).status).toBe(404);
    expect((await fetch(`${app!.url}/projects/not-a-uuid/download`, { headers: { Cookie: cookie } })).status).toBe(404);
    expect((await fetch(`${app!.url}/projects/${randomUUID()}/download`, { headers: { Cookie: cookie } })).status).toBe(
      404,
    );
  });

  it("closes the preview server with the app", async () => {
    const previewUrl = app!.previewUrl;
    await app!.close();
    closed = true;
    expect(mod.runningPreviewServer()).toBeUndefined();
    await expect(fetch(`${previewUrl}/`)).rejects.toThrow();
  });
});
