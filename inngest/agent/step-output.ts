/**
 * The text a finished step shows the builder: the tool's result as the model
 * read it (a command's status line, stdout and stderr), bounded so a run
 * event stays small. Over the bound the head and the tail are kept, like a
 * command's captured output: the start says what ran, the end how it ended.
 */
import { omittedMarker, utf8Prefix, utf8Suffix } from "../../sandbox/output";

export const STEP_OUTPUT_BYTES = 8 * 1024;

export function stepOutput(raw: string, maxBytes = STEP_OUTPUT_BYTES): string {
  // Shown, not parsed: a NUL (which Postgres text and jsonb refuse) reads as the symbol for it.
  const text = raw.replace(/\0/g, "\u2400");
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  const head = utf8Prefix(bytes.subarray(0, Math.floor(maxBytes / 2)));
  const tail = utf8Suffix(bytes.subarray(bytes.length - (maxBytes - Math.floor(maxBytes / 2))));
  return head.toString("utf8") + omittedMarker(bytes.length - head.length - tail.length) + tail.toString("utf8");
}
