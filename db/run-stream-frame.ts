/**
 * A stream frame: what the model has written so far for a run's current
 * step (decision 035). Ephemeral: never a run_events row, never replayed by
 * Last-Event-ID. Browser-safe (the live card reads frames): no server imports.
 */

/** SSE event name of a frame (no `id:` line, so the browser's Last-Event-ID keeps pointing at the last durable row). */
export const RUN_STREAM_EVENT = "run-stream";

/** A frame's JSON stays under this many bytes: Postgres refuses a NOTIFY payload of 8000 bytes or more. */
export const MAX_FRAME_BYTES = 7_500;
/** A path longer than this is cut (a frame must keep room for the text). */
const MAX_PATH_CHARS = 300;

export interface StreamFrame {
  runId: string;
  projectId: string;
  iteration: number;
  /** One model call's stream (a fresh id per call); frames of one stream are ordered by `seq`. */
  streamId: string;
  seq: number;
  /** The tool the model is writing, once it has named one. */
  tool?: string;
  /** write_file's path, read_file's, list_files'. */
  path?: string;
  /** The text so far: the reply's message, the file's content, the command. Its end, when it is long. */
  text: string;
  /** Characters cut from the front of `text` to keep the frame small (0: `text` is all of it). */
  skipped: number;
  /** The stream ended (the answer is in, or the call was stopped or failed): drop what it showed. */
  done?: boolean;
  /** Date.now() when published. */
  at: number;
}

/** The pieces of a partial action BAML hands over while the model writes it. */
export function partialFields(partial: unknown): { tool?: string; path?: string; text: string } {
  if (!partial || typeof partial !== "object") return { text: "" };
  const p = partial as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const tool = str(p.tool);
  const path = str(p.path);
  const text = str(p.message) ?? str(p.content) ?? str(p.command) ?? "";
  return { ...(tool ? { tool } : {}), ...(path !== undefined ? { path } : {}), text };
}

function bytes(frame: StreamFrame): number {
  return new TextEncoder().encode(JSON.stringify(frame)).length;
}

/**
 * The frame, cut to fit MAX_FRAME_BYTES: a long path is shortened, and the
 * text keeps its end (what was written last), counting what it dropped in
 * `skipped`. JSON.stringify escapes NUL and lone surrogates, so the payload
 * is always text Postgres accepts.
 */
export function fitFrame(frame: StreamFrame, maxBytes = MAX_FRAME_BYTES): StreamFrame {
  let fitted: StreamFrame =
    frame.path && frame.path.length > MAX_PATH_CHARS
      ? { ...frame, path: `${frame.path.slice(0, MAX_PATH_CHARS)}…` }
      : frame;
  let size = bytes(fitted);
  while (size > maxBytes && fitted.text.length > 0) {
    // Escapes and multi-byte characters make a character cost 1 to 6 bytes: cut in proportion, then check again.
    const keep = Math.max(0, Math.floor(fitted.text.length * (maxBytes / size) * 0.95) - 16);
    let cut = fitted.text.length - keep;
    // Never split a surrogate pair.
    const code = fitted.text.charCodeAt(cut);
    if (code >= 0xdc00 && code <= 0xdfff) cut++;
    fitted = { ...fitted, text: fitted.text.slice(cut), skipped: fitted.skipped + cut };
    size = bytes(fitted);
  }
  return fitted;
}

/** A frame as parsed from a payload or a message, or undefined when it is not one. */
export function parseFrame(value: unknown): StreamFrame | undefined {
  if (!value || typeof value !== "object") return undefined;
  const f = value as Record<string, unknown>;
  const isStr = (v: unknown) => typeof v === "string";
  const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  if (!isStr(f.runId) || !isStr(f.projectId) || !isStr(f.streamId) || !isStr(f.text)) return undefined;
  if (!isNum(f.iteration) || !isNum(f.seq) || !isNum(f.skipped) || !isNum(f.at)) return undefined;
  if (f.tool !== undefined && !isStr(f.tool)) return undefined;
  if (f.path !== undefined && !isStr(f.path)) return undefined;
  return value as StreamFrame;
}
