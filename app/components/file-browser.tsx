/**
 * The project's files on the builder page: a tree of links (works without
 * JavaScript: each file is a URL, e.g. `?file=src/app.js`) and a read-only,
 * highlighted view of one file.
 */
import type { LinkDescriptor } from "@remix-run/node";
import hljsTheme from "highlight.js/styles/github.css?url";
import type { ProjectFile } from "~/models/project-files.server";
import filesStyles from "~/styles/files.css?url";
// A type only: erased from the browser bundle.

/** For the page's `links`: `export const links: LinksFunction = () => [...fileBrowserLinks, …]`. */
export const fileBrowserLinks: LinkDescriptor[] = [
  { rel: "stylesheet", href: hljsTheme },
  { rel: "stylesheet", href: filesStyles },
];

interface TreeFolder {
  name: string;
  /** Path of the folder, "" for the root. */
  path: string;
  folders: TreeFolder[];
  files: { name: string; path: string }[];
}

/** Nested folders from the flat, sorted list listFiles gives; order within a folder is kept. */
export function buildFileTree(files: readonly string[]): TreeFolder {
  const root: TreeFolder = { name: "", path: "", folders: [], files: [] };
  for (const file of files) {
    const names = file.split("/");
    let folder = root;
    for (const name of names.slice(0, -1)) {
      const folderPath = folder.path ? `${folder.path}/${name}` : name;
      let next = folder.folders.find((f) => f.name === name);
      if (!next) {
        next = { name, path: folderPath, folders: [], files: [] };
        folder.folders.push(next);
      }
      folder = next;
    }
    folder.files.push({ name: names[names.length - 1]!, path: file });
  }
  return root;
}

export interface FileTreeProps {
  files: readonly string[];
  /** The path shown in the code view, if any. */
  selected?: string | null;
  /** Where a file's link goes, e.g. (path) => `?file=${encodeURIComponent(path)}`. */
  hrefFor(path: string): string;
  /** Set when the listing was cut: says so under the tree. */
  truncated?: boolean;
}

export function FileTree({ files, selected, hrefFor, truncated }: FileTreeProps) {
  const tree = buildFileTree(files);
  return (
    <nav className="file-tree" aria-label="Project files">
      {files.length === 0 ? (
        <p className="file-tree-empty">No files yet.</p>
      ) : (
        <FolderList folder={tree} selected={selected ?? null} hrefFor={hrefFor} />
      )}
      {truncated ? <p className="file-tree-note">Not every file is listed: the project has too many.</p> : null}
    </nav>
  );
}

function FolderList({
  folder,
  selected,
  hrefFor,
}: {
  folder: TreeFolder;
  selected: string | null;
  hrefFor(path: string): string;
}) {
  return (
    <ul>
      {folder.folders.map((child) => (
        <li key={`d:${child.path}`} className="file-tree-folder">
          {/* <details> folds a folder without JavaScript; all start open so every file is one look away. */}
          <details open>
            <summary>{child.name}/</summary>
            <FolderList folder={child} selected={selected} hrefFor={hrefFor} />
          </details>
        </li>
      ))}
      {folder.files.map((file) => (
        <li key={`f:${file.path}`} className="file-tree-file">
          <a href={hrefFor(file.path)} aria-current={file.path === selected ? "page" : undefined}>
            {file.name}
          </a>
        </li>
      ))}
    </ul>
  );
}

export function CodeView({ file }: { file: ProjectFile }) {
  return (
    <figure className="code-view">
      <figcaption>
        <code>{file.path}</code> <span className="code-view-size">{formatBytes(file.bytes)}</span>
      </figcaption>
      {file.binary || file.html === null ? (
        <p className="code-view-note">This is a binary file; it is not shown here. Download the project to get it.</p>
      ) : (
        <>
          {file.truncated ? (
            <p className="code-view-note">
              The file is {formatBytes(file.bytes)}; only its beginning is shown. Download the project for the whole
              file.
            </p>
          ) : null}
          <pre tabIndex={0} aria-label={`Contents of ${file.path}`}>
            {/* Safe as HTML: highlight.js escapes every character of the file it emits (`<` becomes `&lt;`) and adds
                only its own <span class="hljs-…"> tags; project-files.server.test.ts checks a <script> comes out inert. */}
            <code className={`hljs language-${file.language}`} dangerouslySetInnerHTML={{ __html: file.html }} />
          </pre>
        </>
      )}
    </figure>
  );
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
