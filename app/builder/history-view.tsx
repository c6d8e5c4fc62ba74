/**
 * The History view (decisions 026, 027): every version of the project,
 * newest first, with what made it (a run's start, a step, its end, a
 * restore), its file counts, and links to its diff, its files and its zip;
 * Restore on each, and Undo on a restore. Works without JavaScript: links
 * and plain forms.
 */
import { Form, Link, useRevalidator } from "@remix-run/react";
import { useEffect } from "react";
import type { HistoryData, HistoryVersion } from "./history.server";
import { changeCounts } from "./live-run-card";
import { DiffFiles } from "~/components/diff-view";
import { CodeView, FileTree } from "~/components/file-browser";
import { RelativeTime } from "~/components/relative-time";

export type HistoryNotice = { kind: "ok"; message: string } | { kind: "error"; message: string };

function label(version: HistoryVersion, byId: Map<string, HistoryVersion>): string {
  switch (version.kind) {
    case "run-start":
      return "Before the run";
    case "step":
      return `Step ${version.iteration}${version.tool ? ` · ${version.tool}` : ""}`;
    case "run-end":
      return `Run ${version.runStatus ?? "ended"}`;
    case "restore": {
      const from = version.restoredFrom ? byId.get(version.restoredFrom) : undefined;
      return from ? `Restored version ${from.number}` : "Restored";
    }
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  return `${(bytes / (1024 * 1024 * 1024)).toFixed(1)} GB`;
}

/** A version the history bound pruned: still listed (runs name it), with nothing to open. */
function PrunedVersion({ version, byId }: { version: HistoryVersion; byId: Map<string, HistoryVersion> }) {
  return (
    <li className="version version-pruned" data-version={version.number} data-pruned="">
      <div className="version-line">
        <strong>v{version.number}</strong> <span className="version-kind">{label(version, byId)}</span>{" "}
        <span className="version-counts">pruned</span> <RelativeTime date={new Date(version.createdAt)} />
      </div>
      {version.prompt ? <div className="version-prompt">{version.prompt}</div> : null}
      <div className="version-skipped">Its files were pruned to keep the history under its size bound.</div>
    </li>
  );
}

export function HistoryView({
  projectId,
  history,
  busy,
  notice,
}: {
  projectId: string;
  history: HistoryData;
  /** Why restoring is not possible now (a run is active), or null. */
  busy: string | null;
  notice: HistoryNotice | null;
}) {
  const { view, selected } = history;
  const byId = new Map(view.versions.map((v) => [v.id, v]));
  const current = selected ? byId.get(selected.versionId) : undefined;
  // A diff is against the version before (a run's: the one it started from); none when that one was pruned.
  const oldestKept = view.available ? view.oldestKept : null;
  const diffable = (number: number) => oldestKept === null || number > oldestKept;
  const runBase = (runId: string) => {
    const own = view.versions.filter((v) => v.runId === runId);
    const first = own.at(-1);
    return !first ? 0 : first.kind === "run-start" ? first.number + 1 : first.number;
  };
  return (
    <div className="history-panel">
      <div className="history-list">
        <div className="history-head">
          <h2>History</h2>
          {view.available ? (
            <span className="hint" data-testid="history-size">
              {view.versions.length} version{view.versions.length === 1 ? "" : "s"} · {formatBytes(view.sizeBytes)} of{" "}
              {formatBytes(view.maxBytes)} on disk
              {view.oldestKept !== null ? ` · versions before ${view.oldestKept} pruned` : ""}
            </span>
          ) : null}
        </div>
        {view.available ? <ExportForm remote={history.remote} /> : null}
        {notice ? (
          <p className={notice.kind === "ok" ? "notice" : "error"} role={notice.kind === "ok" ? "status" : "alert"}>
            {notice.message}
          </p>
        ) : null}
        {history.error ? <p className="error">{history.error}</p> : null}
        {!view.available ? (
          <p className="empty">{view.message}</p>
        ) : view.versions.length === 0 ? (
          <p className="empty">
            No versions yet: one is taken when a run starts, after each step that changes files, and when it ends.
          </p>
        ) : (
          <ol className="versions" aria-label="Versions, newest first">
            {view.versions.map((v, index) => {
              const previous = view.versions[index + 1];
              if (view.oldestKept !== null && v.number < view.oldestKept)
                return <PrunedVersion key={v.id} version={v} byId={byId} />;
              return (
                <li
                  key={v.id}
                  className={`version version-${v.kind}${v.id === current?.id ? " version-selected" : ""}`}
                  data-version={v.number}
                >
                  <div className="version-line">
                    <strong>v{v.number}</strong> <span className="version-kind">{label(v, byId)}</span>{" "}
                    <span className="version-counts" aria-label="files added, changed, deleted">
                      {changeCounts({ added: v.filesAdded, changed: v.filesChanged, deleted: v.filesDeleted })}
                    </span>{" "}
                    <RelativeTime date={new Date(v.createdAt)} />
                  </div>
                  {v.prompt ? <div className="version-prompt">{v.prompt}</div> : null}
                  {v.skipped.length ? (
                    <div className="version-skipped">
                      Not kept: {v.skipped.map((s) => `${s.path} (${s.reason})`).join("; ")}
                    </div>
                  ) : null}
                  <div className="version-actions">
                    {diffable(v.number) ? (
                      <Link to={`?view=history&version=${v.id}&scope=step`} preventScrollReset>
                        Diff
                      </Link>
                    ) : null}
                    {v.runId && v.kind === "run-end" && diffable(runBase(v.runId)) ? (
                      <Link to={`?view=history&version=${v.id}&scope=run`} preventScrollReset>
                        Run diff
                      </Link>
                    ) : null}
                    <Link to={`?view=history&version=${v.id}&show=files`} preventScrollReset>
                      Files
                    </Link>
                    <a href={`/projects/${projectId}/versions/${v.id}/zip`} download>
                      .zip
                    </a>
                    {index === 0 && v.kind === "restore" && previous ? (
                      <RestoreButton
                        versionId={previous.id}
                        busy={busy}
                        text="Undo this restore"
                        title={`Back to version ${previous.number}`}
                      />
                    ) : index > 0 ? (
                      <RestoreButton
                        versionId={v.id}
                        busy={busy}
                        text="Restore"
                        title={`Make the files those of version ${v.number}`}
                      />
                    ) : null}
                  </div>
                </li>
              );
            })}
          </ol>
        )}
      </div>
      <div className="history-detail">
        {selected?.kind === "diff" && current ? (
          <>
            <h3>
              {selected.diff.scope === "run"
                ? `What the run changed (version ${selected.diff.fromNumber ?? "—"} → ${selected.diff.toNumber})`
                : `Version ${current.number}: ${label(current, byId)}${
                    selected.diff.fromNumber ? ` (against version ${selected.diff.fromNumber})` : ""
                  }`}
            </h3>
            <DiffFiles files={selected.diff.files} />
          </>
        ) : selected?.kind === "files" ? (
          <>
            <h3>Files of version {selected.number}</h3>
            <p className="hint">A look before restoring: this is that version as it was; the workspace is unchanged.</p>
            <div className="files-panel">
              {selected.files.length ? (
                <FileTree
                  files={selected.files}
                  truncated={false}
                  selected={selected.file?.path}
                  hrefFor={(path) =>
                    `?view=history&version=${selected.versionId}&show=files&file=${encodeURIComponent(path)}`
                  }
                />
              ) : (
                <p className="empty">This version has no files.</p>
              )}
              {selected.file ? (
                <CodeView file={selected.file} />
              ) : selected.fileError ? (
                <p className="error">{selected.fileError}</p>
              ) : selected.files.length ? (
                <p className="empty">Pick a file to read it.</p>
              ) : null}
            </div>
          </>
        ) : view.available && view.versions.length ? (
          <p className="empty">Pick a version to see its diff or its files.</p>
        ) : null}
      </div>
    </div>
  );
}

function RestoreButton({
  versionId,
  busy,
  text,
  title,
}: {
  versionId: string;
  busy: string | null;
  text: string;
  title: string;
}) {
  return (
    <Form method="post" className="inline-form">
      <input type="hidden" name="versionId" value={versionId} />
      <button
        type="submit"
        name="intent"
        value="version-restore"
        className="small"
        disabled={busy !== null}
        title={busy ?? title}
      >
        {text}
      </button>
    </Form>
  );
}

/** Export to Git: the remote's URL, the branch, and a token (write-only: never shown back). */
function ExportForm({ remote }: { remote: HistoryData["remote"] }) {
  return (
    <details className="export-git" open={remote?.lastError ? true : undefined}>
      <summary>Export to Git</summary>
      <Form method="post" className="export-form">
        {remote?.pushState === "pushing" ? <RefreshWhilePushing /> : null}
        <label>
          Remote URL
          <input
            name="url"
            type="text"
            inputMode="url"
            required
            placeholder="https://github.com/you/app.git"
            defaultValue={remote?.url ?? ""}
            autoComplete="off"
          />
        </label>
        <label>
          Branch
          <input name="branch" type="text" defaultValue={remote?.branch ?? "dyno"} autoComplete="off" />
        </label>
        <label>
          Token {remote?.hasToken ? <span className="hint">(saved; leave blank to keep it)</span> : null}
          <input name="token" type="password" autoComplete="off" placeholder="A token with write access" />
        </label>
        <button
          type="submit"
          name="intent"
          value="version-export"
          className="small"
          disabled={remote?.pushState === "pushing"}
        >
          Push history
        </button>
        <PushState remote={remote} />
        <p className="hint">Each version is a commit naming its prompt and run. The token is stored encrypted.</p>
      </Form>
    </details>
  );
}

/** How often the History view asks again while a push is under way (the push runs in the engine, not the request). */
const PUSH_POLL_MS = 2_000;

function RefreshWhilePushing() {
  const { revalidate, state } = useRevalidator();
  useEffect(() => {
    const timer = setInterval(() => {
      if (state === "idle") revalidate();
    }, PUSH_POLL_MS);
    return () => clearInterval(timer);
  }, [revalidate, state]);
  return null;
}

/** The push in flight, or how the last one ended. Without JavaScript a reload shows the same. */
function PushState({ remote }: { remote: HistoryData["remote"] }) {
  if (!remote) return null;
  const failed = remote.pushState === "failed" || (!remote.pushState && !!remote.lastError);
  // After a failed push the older success is news about what the branch still holds, so it comes second.
  const pushed = remote.lastPushedAt ? (
    failed ? (
      <>
        {remote.branch} still has{remote.lastPushedNumber ? ` version ${remote.lastPushedNumber}` : " what was pushed"},
        pushed <RelativeTime date={new Date(remote.lastPushedAt)} />.
      </>
    ) : (
      <>
        Pushed{remote.lastPushedNumber ? ` version ${remote.lastPushedNumber}` : ""} to {remote.branch}{" "}
        <RelativeTime date={new Date(remote.lastPushedAt)} />.
      </>
    )
  ) : null;
  if (remote.pushState === "pushing") {
    return (
      <p className="hint push-state" data-push-state="pushing" role="status">
        Pushing version {remote.pushNumber} to {remote.branch}…
      </p>
    );
  }
  return (
    <>
      {failed ? (
        <p className="error push-state" data-push-state="failed" role="status">
          Last push{remote.pushNumber ? ` (version ${remote.pushNumber})` : ""}: {remote.lastError}
        </p>
      ) : null}
      {pushed ? (
        <p className="hint push-state" data-push-state="pushed" role="status">
          {pushed}
        </p>
      ) : null}
    </>
  );
}
