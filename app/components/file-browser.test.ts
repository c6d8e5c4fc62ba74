import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { buildFileTree, CodeView, FileTree } from "./file-browser";

const files = ["README.md", "index.html", "src/app.js", "src/lib/util.js", "src/style.css", "z.txt"];
const hrefFor = (path: string) => `?file=${encodeURIComponent(path)}`;

describe("FileTree", () => {
  it("nests folders from the flat list, keeping its order", () => {
    const tree = buildFileTree(files);
    expect(tree.files.map((f) => f.path)).toEqual(["README.md", "index.html", "z.txt"]);
    expect(tree.folders.map((f) => f.path)).toEqual(["src"]);
    const src = tree.folders[0]!;
    expect(src.files.map((f) => f.name)).toEqual(["app.js", "style.css"]);
    expect(src.folders[0]).toMatchObject({
      name: "lib",
      path: "src/lib",
      files: [{ name: "util.js", path: "src/lib/util.js" }],
    });
  });

  it("renders a labelled nav of nested lists with a link per file and marks the selected one", () => {
    const html = renderToStaticMarkup(createElement(FileTree, { files, selected: "src/lib/util.js", hrefFor }));
    expect(html).toMatch(/^<nav class="file-tree" aria-label="Project files"><ul>/);
    expect(html).toContain(
      '<summary>src/</summary><ul><li class="file-tree-folder"><details open=""><summary>lib/</summary><ul>',
    );
    expect(html).toContain('<a href="?file=src%2Flib%2Futil.js" aria-current="page">util.js</a>');
    expect(html).toContain('<a href="?file=index.html">index.html</a>');
    expect(html.match(/aria-current/g)).toHaveLength(1);
  });

  it("says when there are no files, and when the list was cut", () => {
    expect(renderToStaticMarkup(createElement(FileTree, { files: [], hrefFor }))).toContain("No files yet.");
    expect(renderToStaticMarkup(createElement(FileTree, { files, hrefFor, truncated: true }))).toContain(
      "Not every file is listed",
    );
  });

  it("escapes file names", () => {
    const html = renderToStaticMarkup(
      createElement(FileTree, { files: ["<img src=x onerror=alert(1)>.html"], hrefFor }),
    );
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;img src=x onerror=alert(1)&gt;.html");
  });
});

describe("CodeView", () => {
  const file = {
    path: "index.html",
    bytes: 20,
    truncated: false,
    binary: false,
    language: "xml",
    html: '<span class="hljs-tag">&lt;p&gt;</span>',
  };

  it("puts the highlighted html in <pre><code class=hljs> under the path", () => {
    const html = renderToStaticMarkup(createElement(CodeView, { file }));
    expect(html).toContain("<figcaption><code>index.html</code>");
    expect(html).toContain('<code class="hljs language-xml"><span class="hljs-tag">&lt;p&gt;</span></code></pre>');
    expect(html).not.toContain("only its beginning");
  });

  it("notes a cut file and shows no content for a binary one", () => {
    expect(
      renderToStaticMarkup(createElement(CodeView, { file: { ...file, truncated: true, bytes: 300_000 } })),
    ).toContain("The file is 293.0 KB; only its beginning is shown.");
    const binary = renderToStaticMarkup(createElement(CodeView, { file: { ...file, binary: true, html: null } }));
    expect(binary).toContain("binary file");
    expect(binary).not.toContain("<pre");
  });
});
