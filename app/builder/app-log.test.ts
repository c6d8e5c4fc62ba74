import { describe, expect, it } from "vitest";
import type { AppLogLine, AppLogStatus } from "../models/app-log";
import {
  appendLines,
  appProblem,
  appStateDetail,
  emptyBuffer,
  FIX_CRASH_LINES,
  FIX_PROMPT_MAX_CHARS,
  fixBlockedReason,
  fixPrompt,
} from "./app-log";

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);
const line = (
  seq: number,
  text = `line ${seq}`,
  stream: AppLogLine["stream"] = "stdout",
  atMs = T0 + seq,
): AppLogLine => ({
  seq,
  at: new Date(atMs).toISOString(),
  stream,
  text,
});
const status = (over: Partial<AppLogStatus> = {}): AppLogStatus => ({
  state: "running",
  command: "npm run dev",
  port: 5173,
  startedAt: new Date(T0).toISOString(),
  restarts: 0,
  reason: null,
  nextRestartAt: null,
  controllable: true,
  ...over,
});

describe("the page's bounded buffer", () => {
  it("appends in order, skips what it already holds (a reconnect overlaps), keeps the newest", () => {
    let buffer = appendLines(emptyBuffer(), [line(0), line(1), line(2)]);
    buffer = appendLines(buffer, [line(1), line(2), line(3)]);
    expect(buffer.lines.map((l) => l.seq)).toEqual([0, 1, 2, 3]);
    expect(buffer.lastSeq).toBe(3);
    expect(buffer.truncated).toBe(false);
    expect(appendLines(buffer, [line(2)])).toBe(buffer);

    const bounded = appendLines(buffer, [line(4), line(5)], false, 4);
    expect(bounded.lines.map((l) => l.seq)).toEqual([2, 3, 4, 5]);
    expect(bounded.truncated).toBe(true);
    expect(appendLines(buffer, [line(9)], true).truncated).toBe(true);
  });
});

describe("appStateDetail", () => {
  it("says why it crashed or stopped, and what starts", () => {
    expect(appStateDetail(status({ state: "crashed", reason: "exited with code 1" }))).toBe("exited with code 1");
    expect(
      appStateDetail(status({ state: "crashed", reason: "exited with code 1", restarts: 1, nextRestartAt: "x" })),
    ).toBe("exited with code 1; restarting on its own (attempt 2).");
    expect(appStateDetail(status({ state: "stopped", reason: "idle for 15 min" }))).toBe("idle for 15 min");
    expect(appStateDetail(status({ state: "starting" }))).toBe("Starting npm run dev…");
    expect(appStateDetail(status())).toBe("Listening on port 5173.");
  });
});

describe("appProblem and fixPrompt", () => {
  it("offers a crash with the end of the log, without the browser's lines", () => {
    const lines = [line(0, "> vite"), line(1, "oops", "browser"), line(2, "Error: Cannot find module 'x'", "stderr")];
    const problem = appProblem(status({ state: "crashed", reason: "exited with code 1" }), lines, null)!;
    expect(problem).toMatchObject({ kind: "crash", title: "The app crashed: exited with code 1", upToSeq: 2 });
    expect(problem.lines.map((l) => l.seq)).toEqual([0, 2]);
    const prompt = fixPrompt(problem, "npm run dev");
    expect(prompt).toContain("The app (`npm run dev`) crashed (exited with code 1).");
    expect(prompt).toContain("```\n> vite\n[stderr] Error: Cannot find module 'x'\n```");
  });

  it("quotes only what the crashed start printed, when the log holds earlier starts", () => {
    const earlier = [line(0, "an earlier start", "stdout", T0 - 60_000), line(1, "GET /", "stdout", T0 - 50_000)];
    const crash = [line(2, "started `npm run dev`", "system"), line(3, "Error: boom", "stderr")];
    const problem = appProblem(
      status({ state: "crashed", reason: "exited with code 1" }),
      [...earlier, ...crash],
      null,
    )!;
    expect(problem.lines.map((l) => l.seq)).toEqual([2, 3]);
    // No start time known: the end of the whole log.
    const unknown = appProblem(status({ state: "crashed", startedAt: null }), [...earlier, ...crash], null)!;
    expect(unknown.lines.map((l) => l.seq)).toEqual([0, 1, 2, 3]);
  });

  it("offers browser errors since the app's current start, and not again once sent", () => {
    const before = line(0, "old error", "browser", T0 - 60_000);
    const lines = [before, line(1, "GET /"), line(2, "TypeError: a is undefined", "browser"), line(3, "x", "browser")];
    const problem = appProblem(status(), lines, null)!;
    expect(problem).toMatchObject({ kind: "browser", title: "The page threw 2 errors in the browser", upToSeq: 3 });
    expect(fixPrompt(problem)).toContain("[browser] TypeError: a is undefined\n[browser] x");
    expect(fixPrompt(problem)).not.toContain("old error");
    expect(appProblem(status(), lines, 3)).toBeNull();
    // A stack line under an error is part of it.
    const stack = [line(1, "Uncaught Error: boom", "browser"), line(2, "    at http://x/:1:17", "browser")];
    expect(appProblem(status(), stack, null)).toMatchObject({ title: "The page threw an error in the browser" });
    expect(appProblem(status(), [line(1)], null)).toBeNull();
  });

  it("stays under the prompt bound, keeping the newest lines, and cannot close its own quote", () => {
    const lines = Array.from({ length: 200 }, (_, i) => line(i, `#${i} \`\`\` ${"e".repeat(900)}`, "stderr"));
    const problem = appProblem(status({ state: "crashed", reason: "exited with code 1" }), lines, null)!;
    expect(problem.lines).toHaveLength(FIX_CRASH_LINES);
    const prompt = fixPrompt(problem);
    expect(prompt.length).toBeLessThanOrEqual(FIX_PROMPT_MAX_CHARS);
    expect(prompt).toContain("#199");
    expect(prompt).not.toContain("#150 ");
    expect(prompt).toMatch(/\[… \d+ earlier lines left out …\]/);
    expect(prompt.match(/```/g)).toHaveLength(2);
  });

  it("says why Fix this is disabled", () => {
    expect(fixBlockedReason(true, null)).toMatch(/agent is working/);
    expect(fixBlockedReason(false, "No model is configured")).toMatch(/needs a model/);
    expect(fixBlockedReason(false, null)).toBeNull();
  });
});
