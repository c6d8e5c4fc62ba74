import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openLocalSandbox } from "../../sandbox";
import type { ProjectRef } from "./project-files.server";

// The app reads its environment once, on first use: point it at a folder of our own first.
const dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-files-"));
process.env.DYNO_DATA_DIR = dataDir;
process.env.SANDBOX_PROVIDER = "local";
process.env.LOCAL_SANDBOX_ISOLATION = "none";
const { languageFor, listProjectFiles, projectSlug, readProjectFile, zipProject, MAX_VIEW_BYTES } =
  await import("./project-files.server");

function localProject(title = "Todo App"): ProjectRef & { title: string } {
  const id = randomUUID();
  return { id, title, sandboxProvider: "local", sandboxId: id };
}

async function workspace(project: ProjectRef, files: Record<string, string>): Promise<string> {
  const sandbox = await openLocalSandbox({ dataDir, projectId: project.id, isolation: "none" });
  for (const [file, content] of Object.entries(files)) await sandbox.writeFile(file, content);
  const location = await sandbox.preview();
  if (location.kind !== "directory") throw new Error("expected a local folder");
  return location.path;
}

/** The thrown value, which must be a Response. */
async function thrownResponse(promise: Promise<unknown>): Promise<Response> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Response) return error;
    throw error;
  }
  throw new Error("expected a thrown Response, but it resolved");
}

/** What a browser shows for highlight.js output: its spans dropped, entities decoded. Fails on any other markup. */
function renderedText(html: string): string {
  const withoutSpans = html.replace(/<span class="[\w -]+">/g, "").replace(/<\/span>/g, "");
  expect(withoutSpans).not.toMatch(/[<>]/);
  return withoutSpans
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#x27;/g, "'")
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code)))
    .replace(/&amp;/g, "&");
}

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

describe("a project no run has touched", () => {
  const project: ProjectRef & { title: string } = {
    id: randomUUID(),
    title: "New",
    sandboxProvider: null,
    sandboxId: null,
  };

  it("lists nothing and creates no workspace", async () => {
    expect(await listProjectFiles(project)).toEqual({ files: [], truncated: false });
    expect(existsSync(path.join(dataDir, "workspaces", project.id))).toBe(false);
  });

  it("has no file to read", async () => {
    const res = await thrownResponse(readProjectFile(project, "index.html"));
    expect(res.status).toBe(404);
    expect(existsSync(path.join(dataDir, "workspaces", project.id))).toBe(false);
  });

  it("zips to an empty archive", async () => {
    expect(unzipSync(await zipProject(project))).toEqual({});
  });

  it("lists nothing for a local project whose folder is gone, and does not recreate it", async () => {
    const gone = localProject();
    expect(await listProjectFiles(gone)).toEqual({ files: [], truncated: false });
    expect(existsSync(path.join(dataDir, "workspaces", gone.id))).toBe(false);
  });

  it("says why when the project's provider cannot be opened (Modal without credentials)", async () => {
    const modal: ProjectRef = { id: randomUUID(), sandboxProvider: "modal", sandboxId: "sb-gone" };
    const listing = await listProjectFiles(modal);
    expect(listing.files).toEqual([]);
    expect(listing.unavailable).toMatch(/MODAL_TOKEN_ID/);
    const res = await thrownResponse(readProjectFile(modal, "index.html"));
    expect(res.status).toBe(503);
  });
});

describe("listing and reading", () => {
  const project = localProject();
  let root: string;
  let outside: string;

  beforeAll(async () => {
    root = await workspace(project, {
      "index.html": '<!doctype html>\n<h1 class="title">Todos</h1>\n<script>alert(1)</script>\n',
      "app.js": "const items = [];\nexport function add(item) { items.push(item); }\n",
      "src/types.ts": "export interface Todo { id: number; done: boolean }\n",
      "src/style.css": "body { color: red; }\n",
      "notes.txt": "a < b && c > d <script>alert('x')</script>\n",
      "README.weird": "<img src=x onerror=alert(1)>",
      "node_modules/pkg/index.js": "module.exports = 1;\n",
      "big.txt": "x".repeat(MAX_VIEW_BYTES + 10),
    });
    writeFileSync(path.join(root, "image.png"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x00, 0x01, 0xff]));
    outside = mkdtempSync(path.join(os.tmpdir(), "dyno-outside-"));
    writeFileSync(path.join(outside, "secret.txt"), "TOP SECRET");
    symlinkSync(path.join(outside, "secret.txt"), path.join(root, "leak.txt"));
  });

  afterAll(() => {
    rmSync(outside, { recursive: true, force: true });
  });

  it("lists every file in tree order, without node_modules", async () => {
    const { files, truncated } = await listProjectFiles(project);
    expect(truncated).toBe(false);
    expect(files).toEqual([
      "README.weird",
      "app.js",
      "big.txt",
      "image.png",
      "index.html",
      "leak.txt",
      "notes.txt",
      "src/style.css",
      "src/types.ts",
    ]);
  });

  it("says when the listing was cut", async () => {
    const listing = await listProjectFiles(project, { maxEntries: 3 });
    expect(listing).toEqual({ files: ["README.weird", "app.js", "big.txt"], truncated: true });
  });

  it("highlights HTML, and a <script> in it comes out as escaped text", async () => {
    const file = await readProjectFile(project, "index.html");
    expect(file).toMatchObject({ path: "index.html", language: "xml", binary: false, truncated: false });
    expect(file.bytes).toBe(
      Buffer.byteLength('<!doctype html>\n<h1 class="title">Todos</h1>\n<script>alert(1)</script>\n'),
    );
    expect(file.html).toContain('<span class="hljs-tag">');
    expect(file.html).not.toContain("<script");
    expect(file.html).not.toContain("<h1");
    expect(renderedText(file.html!)).toBe('<!doctype html>\n<h1 class="title">Todos</h1>\n<script>alert(1)</script>\n');
  });

  it("escapes markup in plain text and in files of unknown type", async () => {
    const notes = await readProjectFile(project, "notes.txt");
    expect(notes.language).toBe("plaintext");
    expect(notes.html).not.toContain("<script");
    expect(renderedText(notes.html!)).toBe("a < b && c > d <script>alert('x')</script>\n");

    const weird = await readProjectFile(project, "README.weird");
    expect(weird.language).toBe("plaintext");
    expect(weird.html).not.toContain("<img");
    expect(renderedText(weird.html!)).toBe("<img src=x onerror=alert(1)>");
  });

  it("highlights JavaScript, TypeScript and CSS by extension", async () => {
    const js = await readProjectFile(project, "app.js");
    expect(js.language).toBe("javascript");
    expect(js.html).toContain('<span class="hljs-keyword">const</span>');
    const ts = await readProjectFile(project, "src/types.ts");
    expect(ts.language).toBe("typescript");
    expect(ts.html).toContain('<span class="hljs-keyword">interface</span>');
    const styles = await readProjectFile(project, "/src/./style.css");
    expect(styles).toMatchObject({ path: "src/style.css", language: "css" });
    expect(styles.html).toContain("hljs-");
  });

  it("marks a binary file and shows none of it", async () => {
    const file = await readProjectFile(project, "image.png");
    expect(file).toMatchObject({ path: "image.png", binary: true, html: null, bytes: 8 });
  });

  it("shows the head of a big file and says it was cut", async () => {
    const file = await readProjectFile(project, "big.txt");
    expect(file.truncated).toBe(true);
    expect(file.bytes).toBe(MAX_VIEW_BYTES + 10);
    expect(file.html!.length).toBe(MAX_VIEW_BYTES);
  });

  it.each([
    ["a missing file", "nope.js"],
    ["a folder", "src"],
    ["the workspace itself", ""],
    ["a climb out", "../../etc/passwd"],
    ["a climb out through a folder", "src/../../x"],
    ["an absolute path (read inside the workspace, where it is missing)", "/etc/passwd"],
    ["a NUL byte", "index.html\0.png"],
    ["a home path", "~/.ssh/id_rsa"],
    ["a symlink pointing outside", "leak.txt"],
  ])("answers 404 for %s", async (_label, filePath) => {
    const res = await thrownResponse(readProjectFile(project, filePath));
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("File not found");
  });
});

describe("zip download", () => {
  it("holds every file byte for byte, under a folder named after the project", async () => {
    const project = localProject("My Todo App!");
    const root = await workspace(project, {
      "index.html": "<h1>Todos</h1>\n",
      "src/app.js": "console.log('héllo');\n",
      "node_modules/x/index.js": "skipped\n",
    });
    const binary = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0x80, 0xc3]);
    mkdirSync(path.join(root, "assets"));
    writeFileSync(path.join(root, "assets", "logo.png"), binary);

    const entries = unzipSync(await zipProject(project));
    expect(Object.keys(entries).sort()).toEqual([
      "my-todo-app/assets/logo.png",
      "my-todo-app/index.html",
      "my-todo-app/src/app.js",
    ]);
    expect(new TextDecoder().decode(entries["my-todo-app/index.html"])).toBe("<h1>Todos</h1>\n");
    expect(new TextDecoder().decode(entries["my-todo-app/src/app.js"])).toBe("console.log('héllo');\n");
    expect(Buffer.from(entries["my-todo-app/assets/logo.png"]!).equals(binary)).toBe(true);
  });

  it("says in TRUNCATED.txt what it left out and why", async () => {
    const project = localProject("leaky");
    const root = await workspace(project, { "index.html": "ok" });
    const outside = mkdtempSync(path.join(os.tmpdir(), "dyno-outside-"));
    try {
      writeFileSync(path.join(outside, "secret.txt"), "TOP SECRET");
      symlinkSync(path.join(outside, "secret.txt"), path.join(root, "leak.txt"));
      const entries = unzipSync(await zipProject(project));
      expect(Object.keys(entries).sort()).toEqual(["leaky/TRUNCATED.txt", "leaky/index.html"]);
      const note = new TextDecoder().decode(entries["leaky/TRUNCATED.txt"]);
      expect(note).toMatch(/leak\.txt: left out, .*leaves the workspace/);
      expect(Object.values(entries).some((data) => new TextDecoder().decode(data).includes("TOP SECRET"))).toBe(false);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("says when the listing itself was cut", async () => {
    const project = localProject("many");
    await workspace(project, { "a.txt": "a", "b.txt": "b", "c.txt": "c" });
    const entries = unzipSync(await zipProject(project, { maxFiles: 2 }));
    expect(Object.keys(entries).sort()).toEqual(["many/TRUNCATED.txt", "many/a.txt", "many/b.txt"]);
    expect(new TextDecoder().decode(entries["many/TRUNCATED.txt"])).toMatch(/more than 2 files/);
  });
});

describe("names", () => {
  it.each([
    ["My Todo App!", "my-todo-app"],
    ["  Crème brûlée  ", "creme-brulee"],
    ["../../etc", "etc"],
    ['quote" ; filename=evil', "quote-filename-evil"],
    ["日本語", "project"],
    ["", "project"],
    ["a".repeat(100), "a".repeat(60)],
  ])("slugs %j as %j", (title, slug) => {
    expect(projectSlug(title)).toBe(slug);
  });

  it.each([
    ["index.html", "xml"],
    ["icons/logo.svg", "xml"],
    ["a.CSS", "css"],
    ["app.mjs", "javascript"],
    ["App.tsx", "typescript"],
    ["package.json", "json"],
    ["README.md", "markdown"],
    ["run.sh", "bash"],
    ["main.py", "python"],
    ["LICENSE", "plaintext"],
    ["archive.tar.gz", "plaintext"],
  ])("highlights %s as %s", (file, language) => {
    expect(languageFor(file)).toBe(language);
  });
});
