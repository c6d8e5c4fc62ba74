import { describe, expect, it } from "vitest";
import type { AgentEntry } from "../../db/schema";
import {
  findStuck,
  normalizedResult,
  stepsOf,
  stuckNote,
  stuckReason,
  stuckVerdict,
  warnedPatterns,
  type StuckThresholds,
} from "./stuck";

const thresholds: StuckThresholds = { warnAfter: 3, stopAfter: 5 };

type Step = { action: Record<string, unknown> | string; ok: boolean; content: string; filesChanged?: number };

let nextId = 1;
function entries(steps: Step[], runId = "r1"): AgentEntry[] {
  const rows: AgentEntry[] = [];
  const add = (iteration: number, kind: AgentEntry["kind"], payload: Record<string, unknown>) =>
    rows.push({ id: nextId++, runId, projectId: "p", iteration, kind, payload, createdAt: new Date() });
  add(0, "user", { prompt: "go" });
  steps.forEach((step, i) => {
    const iteration = i + 1;
    if (typeof step.action === "string") add(iteration, "action", { problem: "unparseable", raw: step.action });
    else add(iteration, "action", { action: step.action });
    const tool = typeof step.action === "string" ? undefined : step.action.tool;
    add(iteration, "result", {
      ...(tool ? { tool } : { problem: "unparseable" }),
      ok: step.ok,
      content: step.content,
      ...(step.filesChanged !== undefined ? { filesChanged: step.filesChanged } : {}),
    });
  });
  return rows;
}

const run = (command: string, ok: boolean, content: string, filesChanged = 0): Step => ({
  action: { tool: "run_command", command },
  ok,
  content,
  filesChanged,
});
const write = (path: string, content: string): Step => ({
  action: { tool: "write_file", path, content },
  ok: true,
  content: `Wrote ${path}`,
  filesChanged: 1,
});
const read = (path: string, content = "…"): Step => ({ action: { tool: "read_file", path }, ok: true, content });

const finding = (steps: Step[]) => findStuck(stepsOf(entries(steps), "r1"));

describe("findStuck", () => {
  it("finds the same action with the same result in a row", () => {
    const found = finding([read("a.js"), ...Array(3).fill(run("cat missing.txt", false, "No such file"))]);
    expect(found).toMatchObject({ pattern: "repeated_action", repeats: 3 });
    expect(found!.description).toBe("ran `cat missing.txt` 3 times in a row with the same result");
  });

  it("finds two actions taking turns without progress", () => {
    const a = read("app.js", "const x = 1;");
    const b = run("node app.js", false, "SyntaxError: Unexpected token");
    expect(finding([a, b, a, b, a, b])).toMatchObject({ pattern: "alternating_actions", repeats: 3 });
  });

  it("finds the same failing command with the same error, other steps between", () => {
    const test = run("npm test", false, "FAIL: expected 2, got 3 (12ms)");
    const sameButSlower = run("npm test", false, "FAIL: expected 2, got 3 (48ms)");
    expect(finding([test, read("a.js"), sameButSlower, read("b.js"), test])).toMatchObject({
      pattern: "repeated_failure",
      repeats: 3,
    });
  });

  it("finds the same reply again and again, even when the results differ", () => {
    const found = finding([1, 2, 3, 4].map((i) => run("curl -s localhost:5173", false, `attempt ${i} refused`)));
    expect(found).toMatchObject({ pattern: "repeated_replies", repeats: 4 });
    // Unusable output is AGENT_MAX_REPAIRS' business, not this.
    expect(
      finding(["Sure!", "Sure!", "Sure!"].map((raw) => ({ action: raw, ok: false, content: "Reply with JSON" }))),
    ).toBeUndefined();
  });

  it("does not flag running the tests after each edit (files changed between, results differ)", () => {
    const steps = [
      write("sum.js", "v1"),
      run("npm test", false, "FAIL: expected 2, got 3"),
      write("sum.js", "v2"),
      run("npm test", false, "FAIL: expected 2, got 3"),
      write("sum.js", "v3"),
      run("npm test", false, "FAIL: expected 2, got 1"),
      write("sum.js", "v4"),
      run("npm test", true, "PASS"),
      write("other.js", "x"),
      run("npm test", true, "PASS"),
    ];
    for (let n = 1; n <= steps.length; n++) {
      expect(stuckVerdict(finding(steps.slice(0, n)), thresholds, new Set()).kind).toBe("ok");
    }
  });

  it("counts a command that changed files as progress, and looks only at this run", () => {
    const install = run("npm install", false, "ERR! peer dependency", 3);
    expect(finding([run("npm test", false, "E"), install, run("npm test", false, "E")])!.repeats).toBeLessThan(3);
    const earlier = entries([run("ls", true, "a"), run("ls", true, "a"), run("ls", true, "a")], "r0");
    expect(stepsOf(earlier, "r1")).toEqual([]);
    expect(findStuck([])).toBeUndefined();
  });

  it("blanks out timings and timestamps in results", () => {
    expect(normalizedResult("done in 1.2s at 2026-12-02T04:50:01.123Z")).toBe(
      normalizedResult("done in 35ms at 2026-12-01T01:00:00Z"),
    );
  });
});

describe("stuckVerdict", () => {
  const repeated = (n: number) => finding(Array(n).fill(run("cat x", false, "No such file")));

  it("tells the agent first, then stops the run if it goes on", () => {
    expect(stuckVerdict(repeated(2), thresholds, new Set()).kind).toBe("ok");
    expect(stuckVerdict(repeated(3), thresholds, new Set()).kind).toBe("warn");
    expect(stuckVerdict(repeated(4), thresholds, new Set(["repeated_action"])).kind).toBe("warn");
    expect(stuckVerdict(repeated(5), thresholds, new Set(["repeated_action"])).kind).toBe("stop");
  });

  it("never stops for a pattern the agent was not told about", () => {
    expect(stuckVerdict(repeated(8), thresholds, new Set(["alternating_actions"])).kind).toBe("warn");
  });

  it("reads the patterns told from this run's notes", () => {
    const rows = entries([]);
    rows.push({
      id: nextId++,
      runId: "r1",
      projectId: "p",
      iteration: 4,
      kind: "note",
      payload: { pattern: "repeated_failure" },
      createdAt: new Date(),
    });
    rows.push({
      id: nextId++,
      runId: "r0",
      projectId: "p",
      iteration: 4,
      kind: "note",
      payload: { pattern: "repeated_action" },
      createdAt: new Date(),
    });
    expect(warnedPatterns(rows, "r1")).toEqual(new Set(["repeated_failure"]));
  });

  it("says plainly what is repeated, to the agent and to the builder", () => {
    const found = repeated(3)!;
    expect(stuckNote(found, thresholds)).toMatch(/you ran `cat x` 3 times in a row with the same result\..*5 repeats/i);
    expect(stuckReason(found)).toMatch(/^The agent seemed stuck and was stopped: it ran `cat x` 3 times/);
  });
});
