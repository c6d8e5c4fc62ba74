/**
 * The builder page's live feed: every run event of a project, each delivered
 * once, in id order, across reconnects. The browser's EventSource reconnects
 * by itself and sends the last id it saw as Last-Event-ID, which the server
 * prefers over `after`, so nothing is lost while the connection was down.
 */
import { useEffect, useRef, useState } from "react";
import { parseFrame, RUN_STREAM_EVENT, type StreamFrame } from "../../db/run-stream-frame";
import { projectEventsUrl, RUN_EVENT, type ProjectEvent } from "~/models/project-events";

export type { ProjectEvent } from "~/models/project-events";

/**
 * Streams `projectId`'s run events with ids above `after` to `onEvent`.
 * `after` is read when connecting (on mount and when `projectId` changes);
 * a later change does not reconnect. `onEvent` may change on every render.
 * `connected` is true while the stream is open.
 */
export function useProjectEvents(
  projectId: string,
  after: number,
  onEvent: (event: ProjectEvent) => void,
  /** Stream frames (decision 035): what the model is writing now. Ephemeral, no ids. */
  onFrame?: (frame: StreamFrame) => void,
): { connected: boolean } {
  const [connected, setConnected] = useState(false);
  const onEventRef = useRef(onEvent);
  onEventRef.current = onEvent;
  const onFrameRef = useRef(onFrame);
  onFrameRef.current = onFrame;
  const afterRef = useRef(after);
  afterRef.current = after;

  useEffect(() => {
    // Not remix-utils' useEventSource: it keeps only the latest message, so a burst of events would be dropped.
    let lastId = afterRef.current;
    const source = new EventSource(projectEventsUrl(projectId, lastId));
    const onOpen = () => setConnected(true);
    // EventSource retries by itself after an error (readyState CONNECTING); it gives up (CLOSED) on a 401/404.
    const onError = () => setConnected(false);
    const onRunEvent = (message: MessageEvent<string>) => {
      let event: ProjectEvent;
      try {
        event = JSON.parse(message.data) as ProjectEvent;
      } catch {
        return;
      }
      // A reconnect may overlap what was already delivered.
      if (typeof event.id !== "number" || event.id <= lastId) return;
      lastId = event.id;
      onEventRef.current(event);
    };
    const onStreamFrame = (message: MessageEvent<string>) => {
      let frame: StreamFrame | undefined;
      try {
        frame = parseFrame(JSON.parse(message.data));
      } catch {
        return;
      }
      if (frame) onFrameRef.current?.(frame);
    };
    source.addEventListener("open", onOpen);
    source.addEventListener("error", onError);
    source.addEventListener(RUN_EVENT, onRunEvent);
    source.addEventListener(RUN_STREAM_EVENT, onStreamFrame);
    return () => {
      source.removeEventListener("open", onOpen);
      source.removeEventListener("error", onError);
      source.removeEventListener(RUN_EVENT, onRunEvent);
      source.removeEventListener(RUN_STREAM_EVENT, onStreamFrame);
      source.close();
      setConnected(false);
    };
  }, [projectId]);

  return { connected };
}
