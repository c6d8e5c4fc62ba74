/**
 * A diff, file by file: what changed (added, changed, deleted, with line
 * counts) and the change itself, drawn by diff2html. The server's rendering
 * shows first (and without JavaScript); in the browser diff2html draws it
 * again with syntax highlighting, unified or side by side. Binary and
 * oversized files are named with a note, not drawn.
 */
import type { LinkDescriptor } from "@remix-run/node";
import diff2htmlStyles from "diff2html/bundles/css/diff2html.min.css?url";
import { useEffect, useRef, useState } from "react";
import type { RenderedFileDiff } from "~/builder/history.server";
import historyStyles from "~/styles/history.css?url";

export const diffViewLinks: LinkDescriptor[] = [
  { rel: "stylesheet", href: diff2htmlStyles },
  { rel: "stylesheet", href: historyStyles },
];

type Layout = "line-by-line" | "side-by-side";

const STATUS_MARK = { added: "A", changed: "M", deleted: "D" } as const;

export function DiffFiles({ files }: { files: RenderedFileDiff[] }) {
  const [layout, setLayout] = useState<Layout>("line-by-line");
  // The layout buttons work only in the browser: without JavaScript the server's unified diff is shown alone.
  const [hydrated, setHydrated] = useState(false);
  useEffect(() => setHydrated(true), []);
  if (files.length === 0) return <p className="empty">No file changed.</p>;
  return (
    <div className="diff-files">
      {hydrated ? (
        <div className="diff-toolbar" role="group" aria-label="Diff layout">
          <button
            type="button"
            className="ghost small"
            aria-pressed={layout === "line-by-line"}
            onClick={() => setLayout("line-by-line")}
          >
            Unified
          </button>
          <button
            type="button"
            className="ghost small"
            aria-pressed={layout === "side-by-side"}
            onClick={() => setLayout("side-by-side")}
          >
            Side by side
          </button>
        </div>
      ) : null}
      <ul className="diff-summary" aria-label="Files changed">
        {files.map((f) => (
          <li key={f.path} className={`diff-status-${f.status}`}>
            <span className="diff-mark" aria-label={f.status}>
              {STATUS_MARK[f.status]}
            </span>{" "}
            <a href={`#diff-${encodeURIComponent(f.path)}`}>
              <code>{f.path}</code>
            </a>{" "}
            <LineCounts file={f} />
          </li>
        ))}
      </ul>
      {files.map((f) => (
        <section key={f.path} id={`diff-${encodeURIComponent(f.path)}`} className="diff-file" aria-label={f.path}>
          {f.diff ? (
            <DrawnDiff diff={f.diff} html={f.html} layout={layout} />
          ) : (
            <p className="diff-note">
              <code>{f.path}</code> ({f.status}): {f.note}
            </p>
          )}
        </section>
      ))}
    </div>
  );
}

function LineCounts({ file }: { file: RenderedFileDiff }) {
  if (file.linesAdded === null) return <span className="diff-lines">binary</span>;
  return (
    <span className="diff-lines">
      <span className="diff-plus">+{file.linesAdded}</span> <span className="diff-minus">−{file.linesDeleted}</span>
    </span>
  );
}

function DrawnDiff({ diff, html, layout }: { diff: string; html: string | null; layout: Layout }) {
  const target = useRef<HTMLDivElement>(null);
  const [drawn, setDrawn] = useState(false);
  useEffect(() => {
    let cancelled = false;
    // Loaded on demand: the highlighter stays out of the page's main bundle.
    void import("diff2html/lib-esm/ui/js/diff2html-ui-slim").then(
      ({ Diff2HtmlUI }) => {
        if (cancelled || !target.current) return;
        const ui = new Diff2HtmlUI(target.current, diff, {
          outputFormat: layout,
          drawFileList: false,
          highlight: true,
          matching: "lines",
          synchronisedScroll: true,
          fileContentToggle: false,
          stickyFileHeaders: false,
        });
        ui.draw();
        setDrawn(true);
      },
      (error: unknown) => console.error("diff2html could not draw the diff:", error),
    );
    return () => {
      cancelled = true;
    };
  }, [diff, layout]);
  return (
    <div
      ref={target}
      className="diff-drawn"
      data-drawn={drawn ? "highlighted" : "plain"}
      // diff2html escapes every line of the file it renders; only its own markup is HTML. The string never changes,
      // so React leaves the element alone once the browser's drawing has replaced it.
      dangerouslySetInnerHTML={{ __html: html ?? "" }}
    />
  );
}
