/**
 * The app process's bounded log: the last lines of its stdout and stderr, Dyno's own "system" lines about it and the
 * "browser" errors the preview page reports. Kept in memory by the process that writes it and on disk as JSON lines
 * (`<dataDir>/apps/<projectId>/log.jsonl`), so any Dyno process on this host can read it (a Logs view polling
 * `logs({ sinceSeq })`) and it outlives a restart of Dyno. Bounded in lines, bytes, line length and rate; the oldest
 * lines go first.
 */
import { existsSync, readFileSync } from "node:fs";
import { appendFile, mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { AppLogLine, AppLogs } from "../types";

export interface AppLogBounds {
  /** Lines kept (default 2,000). */
  maxLines: number;
  /** Bytes of text kept (default 256 KiB). */
  maxBytes: number;
  /** A longer line is cut (default 2,000 characters). */
  maxLineChars: number;
  /** Output lines taken per second; more are dropped and counted in a system line (default 200). */
  maxLinesPerSecond: number;
}

export const DEFAULT_APP_LOG_BOUNDS: AppLogBounds = {
  maxLines: 2000,
  maxBytes: 256 * 1024,
  maxLineChars: 2000,
  maxLinesPerSecond: 200,
};

/** The most lines one logs() call returns. */
export const MAX_LOG_READ_LINES = 2000;

const FILE = "log.jsonl";
/** Terminal colour and cursor sequences, which dev servers print even to a pipe sometimes. */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g;

function lineBytes(line: AppLogLine): number {
  return Buffer.byteLength(line.text) + 64;
}

export class AppLogStore {
  private lines: AppLogLine[] = [];
  private bytes = 0;
  private nextSeq = 0;
  /** The oldest seq ever dropped by the bound (so a reader asking for older knows it lost lines). */
  private droppedBefore = 0;
  private pending: string[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | undefined;
  private fileLines = 0;
  private rateSecond = 0;
  private rateCount = 0;
  private rateDropped = 0;
  private closed = false;

  private constructor(
    readonly folder: string,
    private readonly bounds: AppLogBounds,
  ) {}

  /** Loads what the folder holds (a previous Dyno process's lines); seq numbers carry on from there. */
  static open(folder: string, bounds: Partial<AppLogBounds> = {}): AppLogStore {
    const store = new AppLogStore(folder, { ...DEFAULT_APP_LOG_BOUNDS, ...bounds });
    const loaded = readLogFile(folder);
    store.fileLines = loaded.length;
    for (const line of loaded) store.keep(line);
    store.nextSeq = loaded.length ? loaded[loaded.length - 1]!.seq + 1 : 0;
    return store;
  }

  /** Adds a line now (system and browser lines, and each line of output). Returns it, or undefined when rate-dropped. */
  append(stream: AppLogLine["stream"], rawText: string): AppLogLine | undefined {
    if (stream === "stdout" || stream === "stderr") {
      const second = Math.floor(Date.now() / 1000);
      if (second !== this.rateSecond) {
        const dropped = this.rateDropped;
        this.rateSecond = second;
        this.rateCount = 0;
        this.rateDropped = 0;
        if (dropped) {
          this.append(
            "system",
            `${dropped} lines of output dropped: the app printed more than ${this.bounds.maxLinesPerSecond} lines in a second`,
          );
        }
      }
      if (++this.rateCount > this.bounds.maxLinesPerSecond) {
        this.rateDropped++;
        return undefined;
      }
    }
    let text = rawText.replace(ANSI, "").replace(/\r/g, "");
    if (text.length > this.bounds.maxLineChars) {
      text = `${text.slice(0, this.bounds.maxLineChars)}… [${text.length - this.bounds.maxLineChars} more characters]`;
    }
    const line: AppLogLine = { seq: this.nextSeq++, at: new Date().toISOString(), stream, text };
    this.keep(line);
    if (this.closed) return line;
    this.pending.push(JSON.stringify(line));
    this.flushTimer ??= setTimeout(() => void this.flush(), 50);
    return line;
  }

  /** Lines with seq >= sinceSeq (all kept lines when unset), at most maxLines of the newest. */
  read(options: { sinceSeq?: number; maxLines?: number } = {}): AppLogs {
    return selectLines(this.lines, this.nextSeq, this.droppedBefore, options);
  }

  /** The seq the next line will get. */
  get seq(): number {
    return this.nextSeq;
  }

  /** Writes nothing to disk from now on (its folder is being removed). */
  close(): void {
    this.closed = true;
    clearTimeout(this.flushTimer);
    this.pending = [];
  }

  /** Writes what is pending to disk; resolves when it is there. */
  flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.closed ? [] : this.pending;
    this.pending = [];
    this.flushing = this.flushing.then(async () => {
      if (!batch.length) return;
      await mkdir(this.folder, { recursive: true });
      this.fileLines += batch.length;
      // Rewritten whole once the file holds twice what is kept: appends stay cheap and the file stays bounded.
      if (this.fileLines > 2 * this.bounds.maxLines || this.fileLines * 300 > 4 * this.bounds.maxBytes) {
        const temporary = path.join(this.folder, `${FILE}.${process.pid}.tmp`);
        await writeFile(temporary, this.lines.map((line) => `${JSON.stringify(line)}\n`).join(""));
        await rename(temporary, path.join(this.folder, FILE));
        this.fileLines = this.lines.length;
      } else {
        await appendFile(path.join(this.folder, FILE), batch.map((text) => `${text}\n`).join(""));
      }
    });
    return this.flushing.catch((error: unknown) => {
      console.warn(`app log ${this.folder}: ${(error as Error).message}`);
    });
  }

  private keep(line: AppLogLine): void {
    this.lines.push(line);
    this.bytes += lineBytes(line);
    while (this.lines.length > this.bounds.maxLines || (this.bytes > this.bounds.maxBytes && this.lines.length > 1)) {
      const dropped = this.lines.shift()!;
      this.bytes -= lineBytes(dropped);
      this.droppedBefore = dropped.seq + 1;
    }
  }
}

function selectLines(
  lines: AppLogLine[],
  nextSeq: number,
  droppedBefore: number,
  options: { sinceSeq?: number; maxLines?: number },
): AppLogs {
  const maxLines = Math.max(1, Math.min(MAX_LOG_READ_LINES, Math.floor(options.maxLines ?? MAX_LOG_READ_LINES)));
  const since = options.sinceSeq ?? 0;
  const newer = lines.filter((line) => line.seq >= since);
  const selected = newer.slice(-maxLines);
  return {
    lines: selected,
    nextSeq,
    truncated: newer.length > selected.length || (since < droppedBefore && droppedBefore > 0),
  };
}

function readLogFile(folder: string): AppLogLine[] {
  const file = path.join(folder, FILE);
  if (!existsSync(file)) return [];
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const lines: AppLogLine[] = [];
  for (const raw of text.split("\n")) {
    if (!raw) continue;
    try {
      const line = JSON.parse(raw) as AppLogLine;
      // A line cut by a crash mid-write, or out of order, is skipped.
      if (typeof line.seq === "number" && (!lines.length || line.seq > lines[lines.length - 1]!.seq)) lines.push(line);
    } catch {
      // not a whole line
    }
  }
  return lines;
}

/** Reads a log another process writes (or wrote), fresh from disk. */
export function readAppLogFile(
  folder: string,
  options: { sinceSeq?: number; maxLines?: number; bounds?: Partial<AppLogBounds> } = {},
): AppLogs {
  const store = AppLogStore.open(folder, options.bounds);
  return store.read(options);
}

/** Splits a stream of output into lines, cutting a line that never ends at maxChars. */
export class LineSplitter {
  private partial = "";

  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxChars = DEFAULT_APP_LOG_BOUNDS.maxLineChars,
  ) {}

  push(chunk: string): void {
    const parts = (this.partial + chunk).split("\n");
    this.partial = parts.pop() ?? "";
    for (const part of parts) this.emit(part);
    while (this.partial.length > this.maxChars) {
      this.emit(this.partial.slice(0, this.maxChars));
      this.partial = this.partial.slice(this.maxChars);
    }
  }

  end(): void {
    if (this.partial) this.emit(this.partial);
    this.partial = "";
  }
}
