import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { previewLabel } from "../app/preview-token.server";
import { raw } from "../tests/support/preview-request";
import { previewContentType, startPreviewServer, type PreviewServer } from "./preview";
import { REPORT_SCRIPT_TAG } from "./preview/report";

const SECRET = "preview-test-secret-0123456789abcdef";
const BUILDER = "localhost:3000 127.0.0.1:3000";

describe("preview server, static files", () => {
  const projectA = randomUUID();
  const projectB = randomUUID();
  /** A project that exists for the label but has no folder: the resolver says null. */
  const projectWithoutFiles = randomUUID();
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0xff]);
  let dir: string;
  let server: PreviewServer;
  let hostA: string;
  let hostB: string;
  const asked: string[] = [];
  const get = (target: string, method = "GET") => raw(server, hostA, target, method);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "dyno-preview-"));
    const a = path.join(dir, "workspaces", projectA);
    const b = path.join(dir, "workspaces", projectB);
    const outside = path.join(dir, "outside");
    mkdirSync(path.join(a, "sub"), { recursive: true });
    mkdirSync(path.join(a, "empty-folder"), { recursive: true });
    mkdirSync(b, { recursive: true });
    mkdirSync(outside, { recursive: true });
    writeFileSync(path.join(a, "index.html"), "<!doctype html><title>A</title><script src=app.js></script>");
    writeFileSync(path.join(a, "app.js"), "localStorage.setItem('a', '1');");
    writeFileSync(path.join(a, "style.css"), "body { color: red }");
    writeFileSync(path.join(a, "logo.png"), png);
    writeFileSync(path.join(a, "data.bin"), "opaque");
    writeFileSync(path.join(a, "hello world.txt"), "spaced");
    writeFileSync(path.join(a, "empty.txt"), "");
    writeFileSync(path.join(a, "sub", "index.html"), "<html><head><meta charset=utf-8></head><p>sub page</p>");
    // windows-1252 bytes that are not UTF-8: injection must leave them as they are.
    writeFileSync(path.join(a, "latin.html"), Buffer.from([0x3c, 0x70, 0x3e, 0xe9, 0xe8, 0x3c, 0x2f, 0x70, 0x3e]));
    writeFileSync(path.join(b, "index.html"), "<title>B</title>");
    writeFileSync(path.join(outside, "secret.txt"), "TOP SECRET");
    writeFileSync(path.join(outside, "index.html"), "OUTSIDE INDEX");
    symlinkSync(path.join(outside, "secret.txt"), path.join(a, "leak.txt"));
    symlinkSync(outside, path.join(a, "leakdir"));
    symlinkSync("app.js", path.join(a, "alias.js"));
    symlinkSync(path.join(outside, "index.html"), path.join(a, "empty-folder", "index.html"));

    const folders = new Map<string, string>([
      [projectA, a],
      [projectB, b],
    ]);
    server = await startPreviewServer({
      port: 0,
      secret: SECRET,
      frameAncestors: () => BUILDER,
      async resolveDirectory(projectId) {
        asked.push(projectId);
        return folders.get(projectId) ?? null;
      },
    });
    hostA = `${previewLabel(SECRET, projectA)}.localhost:${server.port}`;
    hostB = `${previewLabel(SECRET, projectB)}.localhost:${server.port}`;
  });

  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("names each project's origin by its label under localhost on its port", () => {
    expect(server.originFor(projectA)).toBe(`http://${hostA}`);
    expect(server.originSource).toBe(`http://*.localhost:${server.port}`);
    expect(new URL(server.originFor(projectA)).hostname.split(".")[0]!.length).toBeLessThanOrEqual(63);
  });

  it("serves the project's index.html at / with the reporter first, the safety headers and no CORS", async () => {
    const res = await get("/");
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(`<!doctype html>${REPORT_SCRIPT_TAG}<title>A</title><script src=app.js></script>`);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.headers["content-security-policy"]).toBe(`frame-ancestors ${BUILDER}`);
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
    expect(res.headers["content-length"]).toBe(String(res.body.length));
  });

  it("puts the reporter first in <head> and leaves the page's other bytes as they are", async () => {
    const sub = await get("/sub/");
    expect(sub.body.toString()).toBe(`<html><head>${REPORT_SCRIPT_TAG}<meta charset=utf-8></head><p>sub page</p>`);
    const latin = await get("/latin.html");
    expect(
      latin.body.equals(
        Buffer.concat([
          Buffer.from(REPORT_SCRIPT_TAG),
          Buffer.from([0x3c, 0x70, 0x3e, 0xe9, 0xe8, 0x3c, 0x2f, 0x70, 0x3e]),
        ]),
      ),
    ).toBe(true);
    const head = await get("/", "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String((await get("/")).body.length));
    expect(head.body.length).toBe(0);
  });

  it("serves the reporter script on the project's own origin", async () => {
    const res = await get("/__dyno/report.js");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(res.body.toString()).toContain("/__dyno/errors");
    expect(res.headers["content-security-policy"]).toBe(`frame-ancestors ${BUILDER}`);
    expect((await get("/__dyno/other")).status).toBe(404);
  });

  it("names the content type by extension and sends bytes unchanged", async () => {
    const css = await get("/style.css");
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    expect(css.body.toString()).toBe("body { color: red }");
    const js = await get("/app.js");
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.body.toString()).toBe("localStorage.setItem('a', '1');");
    const image = await get("/logo.png");
    expect(image.headers["content-type"]).toBe("image/png");
    expect(image.body.equals(png)).toBe(true);
    const unknown = await get("/data.bin");
    expect(unknown.headers["content-type"]).toBe("application/octet-stream");
    const empty = await get("/empty.txt");
    expect(empty.status).toBe(200);
    expect(empty.body.length).toBe(0);
    const spaced = await get("/hello%20world.txt");
    expect(spaced.body.toString()).toBe("spaced");
    // A link inside the workspace to a file inside it is fine.
    const alias = await get("/alias.js");
    expect(alias.status).toBe(200);
    expect(alias.body.toString()).toContain("localStorage");
    const headCss = await get("/style.css", "HEAD");
    expect(headCss.headers["content-length"]).toBe(String("body { color: red }".length));
    expect(headCss.body.length).toBe(0);
  });

  it("knows the listed content types", () => {
    expect(previewContentType("a.mjs")).toBe("text/javascript; charset=utf-8");
    expect(previewContentType("a.JSON")).toBe("application/json; charset=utf-8");
    expect(previewContentType("a.js.map")).toBe("application/json; charset=utf-8");
    expect(previewContentType("a.svg")).toBe("image/svg+xml");
    expect(previewContentType("a.jpg")).toBe("image/jpeg");
    expect(previewContentType("a.gif")).toBe("image/gif");
    expect(previewContentType("a.webp")).toBe("image/webp");
    expect(previewContentType("favicon.ico")).toBe("image/x-icon");
    expect(previewContentType("a.txt")).toBe("text/plain; charset=utf-8");
    expect(previewContentType("a.wasm")).toBe("application/wasm");
    expect(previewContentType("Makefile")).toBe("application/octet-stream");
  });

  it("redirects a folder to the trailing-slash form", async () => {
    const folder = await get("/sub?x=1");
    expect(folder.status).toBe(302);
    expect(folder.headers.location).toBe("sub/?x=1");
    expect(new URL(folder.headers.location as string, `http://${hostA}/sub`).pathname).toBe("/sub/");
    const page = await get("/sub/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
  });

  it("takes the label whatever its case, as DNS does, and a Host without the port (behind a proxy)", async () => {
    expect((await raw(server, hostA.toUpperCase(), "/app.js")).status).toBe(200);
    expect((await raw(server, `${previewLabel(SECRET, projectA)}.localhost`, "/app.js")).status).toBe(200);
  });

  const label = () => previewLabel(SECRET, projectA);
  const token = () => label().split("-")[1]!;
  const hexA = () => label().split("-")[0]!;
  it.each([
    ["no Host at all", () => ""],
    ["the bare listener address", () => `127.0.0.1:${server.port}`],
    ["localhost itself", () => `localhost:${server.port}`],
    ["a wrong token", () => `${hexA()}-${"a".repeat(20)}.localhost`],
    ["another project's token", () => `${hexA()}-${previewLabel(SECRET, projectB).split("-")[1]}.localhost`],
    ["a token one character short", () => `${hexA()}-${token().slice(0, -1)}.localhost`],
    ["a token one character long", () => `${label()}a.localhost`],
    ["the uuid with its dashes", () => `${projectA}-${token()}.localhost`],
    ["the label under another domain", () => `${label()}.evil.example`],
    ["the label nested one level deeper", () => `x.${label()}.localhost`],
    ["the label as a suffix of a longer name", () => `x${label()}.localhost`],
    ["a label signed with another secret", () => `${previewLabel(`${SECRET}x`, projectA)}.localhost`],
    ["a project without files", () => `${previewLabel(SECRET, projectWithoutFiles)}.localhost`],
  ])("answers 404 for %s, saying no more", async (_label, host) => {
    const res = await raw(server, host(), "/");
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe("Not found");
    expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
  });

  it.each([
    ["a missing file", "/nope.html"],
    ["a folder without index.html", "/leakdir/"],
    ["an encoded slash traversal", `/..%2f..%2f${projectB}%2findex.html`],
    ["an encoded dot-dot segment", `/%2e%2e/${projectB}/index.html`],
    ["a raw dot-dot segment", "/../../outside/secret.txt"],
    ["an encoded backslash", "/..%5c..%5coutside%5csecret.txt"],
    ["a NUL byte", "/index.html%00.png"],
    ["a bad escape", "/%E0%A4%A"],
    ["a symlink to a file outside", "/leak.txt"],
    ["a file through a symlinked folder outside", "/leakdir/secret.txt"],
    ["an index.html that links outside", "/empty-folder/"],
    ["an absolute-form target", "http://evil.example/"],
  ])("answers 404 for %s", async (_label, target) => {
    const res = await get(target);
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe("Not found");
    expect(res.body.toString()).not.toContain("SECRET");
  });

  it("serves the other project on its own origin, and only its own files", async () => {
    const res = await raw(server, hostB, "/");
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(`${REPORT_SCRIPT_TAG}<title>B</title>`);
    expect((await raw(server, hostB, "/app.js")).status).toBe(404);
  });

  it("never asks for the folder of a request whose label is wrong", async () => {
    asked.length = 0;
    await raw(server, `${hexA()}-${previewLabel(SECRET, projectB).split("-")[1]}.localhost`, "/index.html");
    await raw(
      server,
      `${previewLabel(SECRET, projectA).replace(hexA(), randomUUID().replaceAll("-", ""))}.localhost`,
      "/",
    );
    expect(asked).toEqual([]);
  });

  it.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])("answers 405 to %s on static files", async (method) => {
    const res = await get("/", method);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("GET, HEAD");
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("stops listening on close", async () => {
    const extra = await startPreviewServer({ port: 0, secret: SECRET, resolveDirectory: async () => null });
    expect((await raw(extra, null, "/")).status).toBe(404);
    await extra.close();
    await expect(raw(extra, null, "/")).rejects.toThrow(/ECONNREFUSED/);
  });
});
