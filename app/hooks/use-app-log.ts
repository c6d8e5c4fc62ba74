/**
 * The app process's live status and log for the builder page (the Logs
 * view and the state near the preview). One EventSource per page, open in
 * every view, so switching to Logs shows what happened meanwhile. It starts
 * from what the loader rendered (its lines and cursor) and resumes after the
 * last line on every reconnect (the browser sends it as Last-Event-ID).
 * Later loader data is not read: the stream is newer than any revalidation.
 */
import { useEffect, useRef, useState } from "react";
import { appendLines, emptyBuffer, type AppLogBuffer } from "~/builder/app-log";
import {
  APP_LOG_EVENT,
  APP_STATUS_EVENT,
  appLogUrl,
  type AppLogBatch,
  type AppLogLine,
  type AppLogStatus,
} from "~/models/app-log";

export interface AppLogInitial {
  status: AppLogStatus;
  lines: AppLogLine[];
  cursor: number | null;
  truncated: boolean;
}

export function useAppLog(
  projectId: string,
  initial: AppLogInitial,
): { status: AppLogStatus; log: AppLogBuffer; connected: boolean } {
  const [status, setStatus] = useState(initial.status);
  const [log, setLog] = useState<AppLogBuffer>(() => ({
    ...appendLines(emptyBuffer(), initial.lines),
    truncated: initial.truncated,
  }));
  const [connected, setConnected] = useState(false);
  const initialRef = useRef(initial);

  useEffect(() => {
    const start = initialRef.current;
    const after = start.lines.at(-1)?.seq ?? start.cursor;
    const source = new EventSource(appLogUrl(projectId, after));
    const onOpen = () => setConnected(true);
    const onError = () => setConnected(false);
    const onStatus = (message: MessageEvent<string>) => {
      try {
        setStatus(JSON.parse(message.data) as AppLogStatus);
      } catch {
        // A message cut short by a dropped connection; the next one says it again.
      }
    };
    const onLog = (message: MessageEvent<string>) => {
      let batch: AppLogBatch;
      try {
        batch = JSON.parse(message.data) as AppLogBatch;
      } catch {
        return;
      }
      if (Array.isArray(batch.lines)) setLog((current) => appendLines(current, batch.lines, batch.gap === true));
    };
    source.addEventListener("open", onOpen);
    source.addEventListener("error", onError);
    source.addEventListener(APP_STATUS_EVENT, onStatus);
    source.addEventListener(APP_LOG_EVENT, onLog);
    return () => {
      source.removeEventListener("open", onOpen);
      source.removeEventListener("error", onError);
      source.removeEventListener(APP_STATUS_EVENT, onStatus);
      source.removeEventListener(APP_LOG_EVENT, onLog);
      source.close();
      setConnected(false);
    };
  }, [projectId]);

  return { status, log, connected };
}
