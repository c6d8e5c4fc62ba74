import { describe, expect, it } from "vitest";
import type { AgentEntry } from "../../db/schema";
import type { AppLogLine } from "../../sandbox";
import {
  boundedLines,
  lastAppLogSeq,
  MAX_CONTEXT_LOG_BYTES,
  MAX_CONTEXT_LOG_LINES,
  mattersToTheAgent,
} from "./app-context";

const line = (stream: AppLogLine["stream"], text: string): AppLogLine => ({ seq: 0, at: "", stream, text });

describe("the app's part of the agent's context", () => {
  it("keeps errors, Dyno's and the browser's lines, not chatter or stack frames", () => {
    expect(mattersToTheAgent(line("stderr", "[vite] Internal server error: Transform failed"))).toBe(true);
    expect(mattersToTheAgent(line("system", "listening on port 5173"))).toBe(true);
    expect(mattersToTheAgent(line("browser", "Uncaught TypeError: x is undefined"))).toBe(true);
    expect(mattersToTheAgent(line("stdout", '✘ [ERROR] Could not resolve "react"'))).toBe(true);
    expect(mattersToTheAgent(line("stdout", "  VITE v5.4.21  ready in 1101 ms"))).toBe(false);
    expect(
      mattersToTheAgent(
        line("stderr", "      at failureErrorWithLog (/workspace/node_modules/esbuild/lib/main.js:1472:15)"),
      ),
    ).toBe(false);
  });

  it("keeps the newest lines within 40 lines and 4 KiB, saying how many were left out", () => {
    const many = Array.from({ length: 100 }, (_, i) => `stderr: line ${i}`);
    const kept = boundedLines(many);
    expect(kept[0]).toBe("[… 60 earlier lines not shown; app_logs reads the log …]");
    expect(kept.slice(1)).toEqual(many.slice(60));
    expect(kept.length - 1).toBe(MAX_CONTEXT_LOG_LINES);
    const long = boundedLines(Array.from({ length: 20 }, () => "x".repeat(1000)));
    expect(long.slice(1).join("\n").length).toBeLessThanOrEqual(MAX_CONTEXT_LOG_BYTES);
  });

  it("starts from the highest seq a think saved", () => {
    const entry = (payload: Record<string, unknown>) => ({ payload }) as AgentEntry;
    expect(
      lastAppLogSeq([entry({}), entry({ appLogSeq: 7 }), entry({ appLogSeq: 3 }), entry({ appLogSeq: "9" })]),
    ).toBe(7);
    expect(lastAppLogSeq([entry({ prompt: "x" })])).toBeUndefined();
  });
});
