import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { previewToken } from "../app/preview-token.server";
import { previewContentType, startPreviewServer, type PreviewServer } from "./preview";

const SECRET = "preview-test-secret-0123456789abcdef";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * A request with the path sent exactly as written: fetch() would resolve
 * "../" and "%2e%2e" segments before sending, hiding what a hostile client
 * can really send.
 */
function raw(server: PreviewServer, target: string, method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: server.port, path: target, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("preview server", () => {
  const projectA = randomUUID();
  const projectB = randomUUID();
  /** A project that exists for the token but has no folder: the resolver says null. */
  const projectWithoutFiles = randomUUID();
  const tokenA = previewToken(SECRET, projectA);
  const tokenB = previewToken(SECRET, projectB);
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0xff]);
  let dir: string;
  let server: PreviewServer;
  const asked: string[] = [];

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
    writeFileSync(path.join(a, "sub", "index.html"), "<p>sub page</p>");
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
      async resolveDirectory(projectId) {
        asked.push(projectId);
        return folders.get(projectId) ?? null;
      },
    });
  });

  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the project's index.html with the safety headers and no CORS", async () => {
    const res = await raw(server, `/${projectA}/${tokenA}/`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toContain("<title>A</title>");
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
    expect(res.headers["content-length"]).toBe(String(res.body.length));
  });

  it("also works through fetch (what a browser sends), and answers HEAD without a body", async () => {
    const res = await fetch(`${server.url}/${projectA}/${tokenA}/app.js`, {
      headers: { Origin: "http://127.0.0.1:3000" },
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("localStorage.setItem('a', '1');");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();

    const head = await raw(server, `/${projectA}/${tokenA}/style.css`, "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String("body { color: red }".length));
    expect(head.body.length).toBe(0);
  });

  it("names the content type by extension and sends bytes unchanged", async () => {
    const css = await raw(server, `/${projectA}/${tokenA}/style.css`);
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    const js = await raw(server, `/${projectA}/${tokenA}/app.js`);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    const image = await raw(server, `/${projectA}/${tokenA}/logo.png`);
    expect(image.headers["content-type"]).toBe("image/png");
    expect(image.body.equals(png)).toBe(true);
    const unknown = await raw(server, `/${projectA}/${tokenA}/data.bin`);
    expect(unknown.headers["content-type"]).toBe("application/octet-stream");
    const empty = await raw(server, `/${projectA}/${tokenA}/empty.txt`);
    expect(empty.status).toBe(200);
    expect(empty.body.length).toBe(0);
    const spaced = await raw(server, `/${projectA}/${tokenA}/hello%20world.txt`);
    expect(spaced.body.toString()).toBe("spaced");
    // A link inside the workspace to a file inside it is fine.
    const alias = await raw(server, `/${projectA}/${tokenA}/alias.js`);
    expect(alias.status).toBe(200);
    expect(alias.body.toString()).toContain("localStorage");
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

  it("redirects the bare project URL, and a folder, to the trailing-slash form", async () => {
    const bare = await raw(server, `/${projectA}/${tokenA}`);
    expect(bare.status).toBe(302);
    expect(bare.headers.location).toBe(`/${projectA}/${tokenA}/`);
    const withQuery = await raw(server, `/${projectA}/${tokenA}?x=1`);
    expect(withQuery.headers.location).toBe(`/${projectA}/${tokenA}/?x=1`);

    const folder = await raw(server, `/${projectA}/${tokenA}/sub`);
    expect(folder.status).toBe(302);
    expect(new URL(folder.headers.location as string, `${server.url}/${projectA}/${tokenA}/sub`).pathname).toBe(
      `/${projectA}/${tokenA}/sub/`,
    );
    const page = await raw(server, `/${projectA}/${tokenA}/sub/`);
    expect(page.status).toBe(200);
    expect(page.body.toString()).toBe("<p>sub page</p>");
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
  });

  it("refuses a bare project URL with a wrong token instead of redirecting", async () => {
    const res = await raw(server, `/${projectA}/${tokenB}`);
    expect(res.status).toBe(404);
    expect(res.headers.location).toBeUndefined();
  });

  it.each([
    ["a wrong token", () => `/${projectA}/${"x".repeat(43)}/`],
    ["another project's token", () => `/${projectA}/${tokenB}/`],
    ["no token", () => `/${projectA}/`],
    ["a token one character short", () => `/${projectA}/${tokenA.slice(0, -1)}/`],
    ["the root", () => `/`],
    ["a non-uuid id", () => `/not-a-uuid/${previewToken(SECRET, "not-a-uuid")}/`],
    ["a project without files", () => `/${projectWithoutFiles}/${previewToken(SECRET, projectWithoutFiles)}/`],
    ["a missing file", () => `/${projectA}/${tokenA}/nope.html`],
    ["a folder without index.html", () => `/${projectA}/${tokenA}/leakdir/`],
    ["an encoded slash traversal", () => `/${projectA}/${tokenA}/..%2f${projectB}%2findex.html`],
    ["an encoded dot-dot segment", () => `/${projectA}/${tokenA}/%2e%2e/${projectB}/index.html`],
    ["a raw dot-dot segment", () => `/${projectA}/${tokenA}/../../outside/secret.txt`],
    ["an encoded backslash", () => `/${projectA}/${tokenA}/..%5c..%5coutside%5csecret.txt`],
    ["a NUL byte", () => `/${projectA}/${tokenA}/index.html%00.png`],
    ["a bad escape", () => `/${projectA}/${tokenA}/%E0%A4%A`],
    ["a symlink to a file outside", () => `/${projectA}/${tokenA}/leak.txt`],
    ["a file through a symlinked folder outside", () => `/${projectA}/${tokenA}/leakdir/secret.txt`],
    ["an index.html that links outside", () => `/${projectA}/${tokenA}/empty-folder/`],
  ])("answers 404 for %s", async (_label, target) => {
    const res = await raw(server, target());
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe("Not found");
    expect(res.body.toString()).not.toContain("SECRET");
    expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("serves the other project with its own token", async () => {
    const res = await raw(server, `/${projectB}/${tokenB}/`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("<title>B</title>");
  });

  it("never asks for the folder of a request whose token is wrong", async () => {
    asked.length = 0;
    await raw(server, `/${projectB}/${tokenA}/index.html`);
    await raw(server, `/${randomUUID()}/${tokenA}/`);
    expect(asked).toEqual([]);
  });

  it.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])("answers 405 to %s", async (method) => {
    const res = await raw(server, `/${projectA}/${tokenA}/`, method);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("GET, HEAD");
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("stops listening on close", async () => {
    const extra = await startPreviewServer({ port: 0, secret: SECRET, resolveDirectory: async () => null });
    expect((await raw(extra, "/")).status).toBe(404);
    await extra.close();
    await expect(raw(extra, "/")).rejects.toThrow(/ECONNREFUSED/);
  });
});
