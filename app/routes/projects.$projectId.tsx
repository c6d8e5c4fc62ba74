import { type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction, data } from "@remix-run/node";
import { Form, Link, useActionData, useFetcher, useLoaderData, useRevalidator } from "@remix-run/react";
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { isFinished } from "../../db/run-status";
import type { StreamFrame } from "../../db/run-stream-frame";
import { requireUserId } from "~/auth/session.server";
import { appProblem, fixBlockedReason, type AppProblem } from "~/builder/app-log";
import { controlProjectApp, isAppIntent, loadAppPanel } from "~/builder/app-log.server";
import { AppIndicator, AppLogsView } from "~/builder/app-logs";
import { handleChatAction, loadBuilder } from "~/builder/builder.server";
import { HistoryView, type HistoryNotice } from "~/builder/history-view";
import { handleVersionAction, isVersionIntent, loadHistory } from "~/builder/history.server";
import { applyEvent, applyFrame, foldEvents, runUndoState, startLiveRun, type LiveRun } from "~/builder/live-run";
import { LiveRunCard } from "~/builder/live-run-card";
import { ModelPickerForm } from "~/builder/model-picker";
import { PromptBox } from "~/builder/prompt-box";
import { RunDetailView } from "~/builder/run-detail";
import { loadRunDetail } from "~/builder/run-detail.server";
import { RunHistory } from "~/builder/run-history";
import { Transcript } from "~/builder/transcript";
import { WebhooksPanel, type WebhookNotice } from "~/builder/webhooks-panel";
import { AppHeader } from "~/components/app-header";
import { diffViewLinks } from "~/components/diff-view";
import { CodeView, FileTree, fileBrowserLinks } from "~/components/file-browser";
import { RenameProject } from "~/components/rename-project";
import { db } from "~/db.server";
import { useAppLog } from "~/hooks/use-app-log";
import { useProjectEvents, type ProjectEvent } from "~/hooks/use-project-events";
import { readForm } from "~/http/form.server";
import { handleModelAction, isModelIntent } from "~/models/model-keys.server";
import { listProjectFiles, readProjectFile, type ProjectFile } from "~/models/project-files.server";
import { requireProject } from "~/models/projects.server";
import { isMultipartRequest, readPromptForm } from "~/models/prompt-images.server";
import { handleWebhookAction, isWebhookIntent, listWebhooks, MAX_WEBHOOKS_PER_PROJECT } from "~/models/webhooks.server";
import { previewServesApp, previewUrlFor } from "~/preview.server";
import logsStyles from "~/styles/logs.css?url";
import settingsStyles from "~/styles/settings.css?url";

const VIEWS = ["preview", "files", "runs", "history", "logs", "webhooks"] as const;
type View = (typeof VIEWS)[number];

export const links = () => [
  ...fileBrowserLinks,
  ...diffViewLinks,
  { rel: "stylesheet", href: logsStyles },
  { rel: "stylesheet", href: settingsStyles },
];

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: `${data?.builder.project.title ?? "Project"} · Dyno` },
];

export async function loader({ request, params }: LoaderFunctionArgs) {
  const userId = await requireUserId(request);
  const project = await requireProject(db, userId, params.projectId);
  const url = new URL(request.url);
  const view: View = VIEWS.find((v) => v === url.searchParams.get("view")) ?? "preview";
  const selected = url.searchParams.get("file");
  const runId = view === "runs" ? url.searchParams.get("run") : null;
  const historyParams = {
    versionId: url.searchParams.get("version"),
    show: url.searchParams.get("show") === "files" ? ("files" as const) : ("diff" as const),
    scope: url.searchParams.get("scope") === "run" ? ("run" as const) : ("step" as const),
    file: selected,
  };
  const [builder, previewUrl, files, runDetail, app, webhooks, history] = await Promise.all([
    loadBuilder(db, project),
    previewUrlFor(request, project),
    view === "files" ? listProjectFiles(project) : null,
    runId !== null ? loadRunDetail(db, project, runId) : null,
    loadAppPanel(project, { withLines: view === "logs" }),
    view === "webhooks" ? listWebhooks(db, project).then((list) => ({ list, max: MAX_WEBHOOKS_PER_PROJECT })) : null,
    view === "history" ? loadHistory(db, project, historyParams) : null,
  ]);
  let file: ProjectFile | null = null;
  let fileError: string | null = null;
  if (view === "files" && selected) {
    try {
      file = await readProjectFile(project, selected);
    } catch (error) {
      if (!(error instanceof Response)) throw error;
      fileError = error.status === 404 ? `No file named “${selected}” in this project.` : await error.text();
    }
  }
  // A dev server updates its own page (HMR): the builder does not reload the frame after a change then.
  const previewLive = previewUrl !== null && (await previewServesApp(project));
  return {
    builder,
    view,
    previewUrl,
    previewLive,
    files,
    file,
    fileError,
    selected,
    runDetail,
    app,
    webhooks,
    history,
  };
}

export async function action({ request, params }: ActionFunctionArgs) {
  const userId = await requireUserId(request);
  const project = await requireProject(db, userId, params.projectId);
  // A prompt with images comes as multipart: its images are checked as they stream in (decision 036).
  const { form, ...upload } = isMultipartRequest(request)
    ? await readPromptForm(request)
    : { form: await readForm(request), images: [] };
  const intent = form.get("intent");
  const result = isAppIntent(intent)
    ? await controlProjectApp(project, intent)
    : isVersionIntent(intent)
      ? await handleVersionAction(db, project, intent, form)
      : isWebhookIntent(intent)
        ? await handleWebhookAction(db, project, form)
        : isModelIntent(intent)
          ? await handleModelAction(db, userId, project, form)
          : await handleChatAction(db, userId, project, form, upload);
  return data(result, { status: result.ok ? 200 : result.status });
}

/** Event types after which the server-rendered parts (transcript, history, files, title) are stale. */
const REVALIDATE_ON = new Set([
  "queued",
  "title",
  "files_changed",
  "version",
  "reply",
  "complete",
  "failed",
  "stopped",
  "steer_queued",
  "steer_withdrawn",
  "steer_delivered",
]);

export default function BuilderRoute() {
  const { builder } = useLoaderData<typeof loader>();
  // A new project gets a fresh page state (live card, stream).
  return <Builder key={builder.project.id} />;
}

function Builder() {
  const {
    builder,
    view,
    previewUrl,
    previewLive,
    files,
    file,
    fileError,
    selected,
    runDetail,
    app,
    webhooks,
    history,
  } = useLoaderData<typeof loader>();
  const actionData = useActionData<typeof action>();
  const revalidator = useRevalidator();
  const stopper = useFetcher<typeof action>();
  const [live, setLive] = useState<LiveRun | null>(() =>
    builder.live ? foldEvents(builder.live.seed, builder.live.events) : null,
  );
  const [stopRequestedFor, setStopRequestedFor] = useState<string | null>(null);
  const [previewVersion, setPreviewVersion] = useState(0);

  // Revalidate once per burst of events, not once per event.
  const revalidateSoon = useDebounced(() => revalidator.revalidate(), 250);
  const reloadPreviewSoon = useDebounced(() => setPreviewVersion((v) => v + 1), 400);
  // A static preview is reloaded to show a change; a dev server's page (previewLive) shows it itself, and a reload
  // would lose its state and the hot update.
  const previewLiveRef = useRef(previewLive);
  previewLiveRef.current = previewLive;

  const onEvent = useCallback(
    (event: ProjectEvent) => {
      setLive((current) => {
        if (current?.id === event.runId) return applyEvent(current, event);
        if (event.type !== "queued") return current; // An older run's late event: the card shows the latest run.
        return applyEvent(startLiveRun({ id: event.runId, mode: "build", maxIterations: 0 }), event);
      });
      if (REVALIDATE_ON.has(event.type)) revalidateSoon();
      if ((event.type === "files_changed" || event.type === "complete") && !previewLiveRef.current) reloadPreviewSoon();
    },
    [revalidateSoon, reloadPreviewSoon],
  );
  const onFrame = useCallback((frame: StreamFrame) => setLive((current) => current && applyFrame(current, frame)), []);
  const { connected } = useProjectEvents(builder.project.id, builder.cursor, onEvent, onFrame);

  const active = live !== null && !isFinished(live.status);

  // The app process: its state near the preview and in the Logs view, and what "Fix this" would send.
  const appLog = useAppLog(builder.project.id, app);
  const [handledSeq, setHandledSeq] = useState<number | null>(null);
  const problem = useMemo(
    () => appProblem(appLog.status, appLog.log.lines, handledSeq),
    [appLog.status, appLog.log.lines, handledSeq],
  );
  const fixBlocked = fixBlockedReason(active, builder.modelProblem);
  // Problems up to a Fix this count as handled once the server took the prompt (a refused one stays offered).
  const fixInFlight = useRef<number | null>(null);
  const onFixSent = useCallback((sent: AppProblem) => {
    fixInFlight.current = sent.upToSeq;
  }, []);
  // The preview shows a "starting" page until the app listens: load it again once it does.
  const appState = appLog.status.state;
  const previousAppState = useRef(appState);
  useEffect(() => {
    if (appState === "running" && previousAppState.current !== "running") reloadPreviewSoon();
    previousAppState.current = appState;
  }, [appState, reloadPreviewSoon]);
  const stop = useCallback(() => {
    if (!live || !active) return;
    setStopRequestedFor(live.id);
    stopper.submit({ intent: "stop", runId: live.id }, { method: "post" });
  }, [live, active, stopper]);

  useEffect(() => {
    if (!active) return;
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape" && !event.defaultPrevented) stop();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [active, stop]);

  // Follow the conversation while the builder is at the bottom; leave them be if they scrolled up to read.
  const chatScroll = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  useEffect(() => {
    const el = chatScroll.current;
    if (!el) return;
    const onScroll = () => {
      pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    return () => el.removeEventListener("scroll", onScroll);
  }, []);
  useEffect(() => {
    const el = chatScroll.current;
    if (el && pinned.current) el.scrollTop = el.scrollHeight;
  }, [live, builder.transcript]);

  // Clear the prompt box once the server accepted a prompt.
  const [sentOk, setSentOk] = useState(0);
  useEffect(() => {
    if (actionData?.ok && (actionData.intent === "prompt" || actionData.intent === "demo")) setSentOk((n) => n + 1);
    if (actionData?.intent === "prompt" && fixInFlight.current !== null) {
      if (actionData.ok) setHandledSeq(fixInFlight.current);
      fixInFlight.current = null;
    }
  }, [actionData]);

  // While a run works the box stays open: what is sent then is queued for the agent's next step (decision 033).
  const busyReason =
    live?.status === "stopping" ? "The run is stopping. The box opens again once it has stopped." : null;
  const steerHint =
    active && !busyReason
      ? live?.status === "queued"
        ? "A run is queued: what you send now is given to the agent at its first step."
        : "The agent is working: what you send now is given to it at its next step. Esc stops the run (not while you type here)."
      : null;
  // A rename's refusal shows beside the title, Restart's and Stop's in the Logs view, every other under the prompt box.
  const renameError = actionData && !actionData.ok && actionData.intent === "rename" ? actionData.error : undefined;
  const webhookNotice = webhookNoticeFrom(actionData);
  const versionNotice = versionNoticeFrom(actionData);
  const undoState = live ? runUndoState(live, builder.versionsOldestKept, builder.newestVersion) : null;
  const chatError =
    // Restart and Stop answer in the Logs view, where their buttons are.
    actionData &&
    !actionData.ok &&
    actionData.intent !== "rename" &&
    !actionData.intent.startsWith("app-") &&
    !isWebhookIntentName(actionData.intent) &&
    actionData.intent !== "model-set" &&
    !isVersionIntentName(actionData.intent)
      ? actionData.error
      : stopper.data && !stopper.data.ok
        ? stopper.data.error
        : undefined;

  return (
    <>
      {/* Without JavaScript there is no event stream: refresh while a run is active, or the app starts in Logs. */}
      {active || (view === "logs" && appLog.status.state === "starting") ? (
        <noscript>
          <meta httpEquiv="refresh" content="3" />
        </noscript>
      ) : null}
      <AppHeader>
        <nav aria-label="Breadcrumb" className="breadcrumb">
          <Link to="/projects">Projects</Link> <span aria-hidden="true">/</span>{" "}
          <h1 className="project-name">{builder.project.title}</h1>
        </nav>
        <RenameProject projectId={builder.project.id} title={builder.project.title} error={renameError} />
        {!connected && active ? (
          <span className="hint reconnecting" role="status">
            Reconnecting to live progress…
          </span>
        ) : null}
      </AppHeader>
      <div className="builder">
        <section className="chat-pane" aria-label="Chat">
          <div className="chat-scroll" ref={chatScroll}>
            <Transcript
              projectId={builder.project.id}
              messages={builder.transcript}
              steering={builder.steering}
              live={
                live
                  ? {
                      runId: live.id,
                      card: <LiveRunCard run={live} stopRequested={stopRequestedFor === live.id} onStop={stop} />,
                    }
                  : undefined
              }
            />
            {live?.status === "failed" || live?.status === "stopped" ? (
              <Form method="post" className="retry run-actions">
                <input type="hidden" name="runId" value={live.id} />
                <button type="submit" name="intent" value="retry">
                  Retry this prompt
                </button>
                {live.status !== "stopped" ? null : undoState === "undo" ? (
                  // Back to the files the run started from; itself a version, so it can be undone in History.
                  <button type="submit" name="intent" value="version-undo-run" className="ghost">
                    Undo this run
                  </button>
                ) : undoState === "redo" ? (
                  // The newest version is this run's undo: back to the files the run left.
                  <button type="submit" name="intent" value="version-redo-run" className="ghost">
                    Redo this run
                  </button>
                ) : null}
              </Form>
            ) : null}
            {versionNotice &&
            (actionData?.intent === "version-undo-run" || actionData?.intent === "version-redo-run") ? (
              <p className={versionNotice.kind === "ok" ? "notice" : "error"} role="status">
                {versionNotice.message}{" "}
                {versionNotice.kind === "ok" ? <Link to="?view=history">See History</Link> : null}
              </p>
            ) : null}
          </div>
          <PromptBox
            busyReason={busyReason}
            steerHint={steerHint}
            modelProblem={builder.modelProblem}
            error={chatError}
            sentOk={sentOk}
            keptPrompt={
              actionData && !actionData.ok && "prompt" in actionData && typeof actionData.prompt === "string"
                ? actionData.prompt
                : undefined
            }
            imageLimits={builder.imageLimits}
          />
          <ModelPickerForm
            picker={builder.models}
            notice={
              actionData?.intent === "model-set"
                ? { ok: actionData.ok, message: (actionData.ok ? actionData.message : actionData.error) ?? "" }
                : null
            }
          />
        </section>

        <section className="work-pane" aria-label="Result">
          <nav className="tabs" aria-label="Views">
            {VIEWS.map((v) => (
              <Link
                key={v}
                to={`?view=${v}`}
                preventScrollReset
                aria-current={view === v ? "page" : undefined}
                className="tab"
              >
                {v === "preview" ? (
                  "Preview"
                ) : v === "files" ? (
                  "Files"
                ) : v === "runs" ? (
                  `Runs (${builder.history.length})`
                ) : v === "history" ? (
                  "History"
                ) : v === "logs" ? (
                  <>
                    Logs <span className={`tab-dot tab-dot-${appState}`} aria-label={`(app ${appState})`} />
                  </>
                ) : (
                  "Webhooks"
                )}
              </Link>
            ))}
            <a className="tab tab-action" href={`/projects/${builder.project.id}/download`} download>
              Download .zip
            </a>
          </nav>

          {view === "preview" ? (
            <PreviewPanel
              url={previewUrl}
              version={previewVersion}
              onReload={() => setPreviewVersion((v) => v + 1)}
              indicator={
                <AppIndicator status={appLog.status} problem={problem} fixBlocked={fixBlocked} onFixSent={onFixSent} />
              }
            />
          ) : view === "logs" ? (
            <AppLogsView
              status={appLog.status}
              log={appLog.log}
              problem={problem}
              fixBlocked={fixBlocked}
              onFixSent={onFixSent}
            />
          ) : view === "files" ? (
            <div className="files-panel">
              {files && files.files.length > 0 ? (
                <FileTree
                  files={files.files}
                  truncated={files.truncated}
                  selected={selected ?? undefined}
                  hrefFor={(path) => `?view=files&file=${encodeURIComponent(path)}`}
                />
              ) : (
                <p className="empty">{files?.unavailable ?? "No files yet: the agent writes them when it builds."}</p>
              )}
              {file ? (
                <CodeView file={file} />
              ) : fileError ? (
                <p className="error">{fileError}</p>
              ) : files?.files.length ? (
                <p className="empty">Pick a file to read it.</p>
              ) : null}
            </div>
          ) : view === "history" && history ? (
            <HistoryView
              projectId={builder.project.id}
              history={history}
              busy={active ? "A run is active: restore once it has finished (or stop it)." : null}
              notice={versionNotice}
            />
          ) : view === "webhooks" ? (
            <WebhooksPanel webhooks={webhooks?.list ?? []} notice={webhookNotice} max={webhooks?.max ?? 0} />
          ) : runDetail ? (
            <RunDetailView key={runDetail.summary.id} detail={runDetail} />
          ) : (
            <RunHistory runs={builder.history} canRetry={!active} />
          )}
        </section>
      </div>
    </>
  );
}

/** The intents the History view and the stopped card post. */
const isVersionIntentName = (intent: string) => intent.startsWith("version-");

function versionNoticeFrom(result: ReturnType<typeof useActionData<typeof action>>): HistoryNotice | null {
  if (!result || !isVersionIntentName(result.intent)) return null;
  if (!result.ok) return { kind: "error", message: result.error };
  return { kind: "ok", message: "message" in result && result.message ? result.message : "Done." };
}

/** The intents the Webhooks view posts (the names only: the browser bundle cannot import the server module). */
const isWebhookIntentName = (intent: string) => intent.startsWith("webhook-");

function webhookNoticeFrom(result: ReturnType<typeof useActionData<typeof action>>): WebhookNotice | null {
  if (!result || !isWebhookIntentName(result.intent)) return null;
  if (!result.ok) return { kind: "error", message: result.error };
  if ("secret" in result && typeof result.secret === "string" && "url" in result)
    return { kind: "added", url: String(result.url), secret: result.secret };
  return { kind: "deleted" };
}

function PreviewPanel({
  url,
  version,
  onReload,
  indicator,
}: {
  url: string | null;
  version: number;
  onReload: () => void;
  /** The app process's state, with links to its log and Fix this. */
  indicator: ReactNode;
}) {
  if (!url)
    return (
      <div className="preview-panel">
        <div className="preview-bar">{indicator}</div>
        <p className="empty">Nothing to preview yet. Once the agent writes an index.html, the app shows here.</p>
      </div>
    );
  return (
    <div className="preview-panel">
      <div className="preview-bar">
        {indicator}
        <span className="preview-url" title={url}>
          {url}
        </span>
        <button type="button" className="ghost small" onClick={onReload}>
          Reload
        </button>
        <a href={url} target="_blank" rel="noopener noreferrer" className="small">
          Open in new tab
        </a>
      </div>
      {/* A separate origin (the preview server) keeps the built app away from the builder's session; the sandbox attribute adds a second fence (no top navigation). */}
      <iframe
        key={version}
        src={url}
        title="Preview of the built app"
        className="preview-frame"
        sandbox="allow-scripts allow-forms allow-modals allow-popups allow-same-origin allow-downloads"
      />
    </div>
  );
}

function useDebounced(fn: () => void, ms: number): () => void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout>>();
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => fnRef.current(), ms);
  }, [ms]);
}
