import { describe, expect, it } from "vitest";
import type { StreamFrame } from "../../db/run-stream-frame";
import type { ProjectEvent } from "../models/project-events";
import {
  applyEvent,
  applyFrame,
  currentStep,
  foldEvents,
  progressOf,
  runChangedFiles,
  runUndoState,
  shownOutput,
} from "./live-run";

const RUN = "11111111-1111-4111-8111-111111111111";
let nextId = 0;
const ev = (type: string, data: Record<string, unknown> = {}, runId = RUN): ProjectEvent => ({
  id: ++nextId,
  runId,
  type,
  data,
  createdAt: new Date(0).toISOString(),
});
const seed = { id: RUN, mode: "build" as const, maxIterations: 0 };

describe("the live card's fold", () => {
  it("follows a run from queued to complete: iteration, tool in flight, plan, files, reply", () => {
    const events = [
      ev("queued", { mode: "build", maxIterations: 20 }),
      ev("starting", { maxIterations: 20 }),
      ev("thinking", { iteration: 1, of: 20 }),
      ev("tool_call", { iteration: 1, tool: "write_file", description: "Write index.html (1 KiB)" }),
    ];
    const running = foldEvents(seed, events);
    expect(running).toMatchObject({ status: "running", iteration: 1, maxIterations: 20, thinking: false });
    expect(currentStep(running)).toEqual({ iteration: 1, tool: "write_file", description: "Write index.html (1 KiB)" });

    const done = [
      ev("tool_result", { iteration: 1, tool: "write_file", ok: true, summary: "Created index.html" }),
      ev("files_changed", { iteration: 1, files: ["index.html"] }),
      ev("thinking", { iteration: 2, of: 20 }),
      ev("tool_call", { iteration: 2, tool: "todo_write", description: "Update the todo list (1/2 done)" }),
      ev("tool_result", { iteration: 2, tool: "todo_write", ok: true, summary: "Update the todo list (1/2 done)" }),
      ev("todos", {
        iteration: 2,
        todos: [
          { id: "1", content: "Page", status: "completed" },
          { id: "2", content: "Style", status: "in_progress" },
        ],
      }),
      ev("files_changed", { iteration: 2, files: ["app.js", "index.html"] }),
      ev("thinking", { iteration: 3, of: 20 }),
      ev("reply", { iteration: 3, message: "Done." }),
      ev("complete", { reply: "Done." }),
    ].reduce(applyEvent, running);
    expect(done).toMatchObject({
      status: "complete",
      iteration: 3,
      thinking: false,
      reply: "Done.",
      files: ["app.js", "index.html"],
    });
    expect(done.todos.map((t) => t.status)).toEqual(["completed", "in_progress"]);
    expect(done.steps.map((s) => [s.tool, s.ok, s.summary])).toEqual([
      ["write_file", true, "Created index.html"],
      ["todo_write", true, "Update the todo list (1/2 done)"],
    ]);
    expect(currentStep(done)).toBeUndefined();
  });

  it("ignores an event it already applied (a reconnect that overlaps) and events of other runs", () => {
    const start = [ev("starting"), ev("thinking", { iteration: 1, of: 5 })];
    const call = ev("tool_call", { iteration: 1, tool: "run_command", description: "Run `ls`" });
    const once = foldEvents(seed, [...start, call]);
    expect(applyEvent(once, call)).toBe(once);
    expect(applyEvent(once, ev("failed", { error: "x" }, "22222222-2222-4222-8222-222222222222"))).toBe(once);
    expect(once.steps).toHaveLength(1);
  });

  it("keeps Stopped when a killed command's result lands after the stop", () => {
    const stopped = foldEvents(seed, [
      ev("starting"),
      ev("thinking", { iteration: 1, of: 5 }),
      ev("tool_call", { iteration: 1, tool: "run_command", description: "Run `sleep 60`" }),
      ev("stopping"),
      ev("stopped", { iteration: 1 }),
    ]);
    const late = applyEvent(
      stopped,
      ev("tool_result", { iteration: 1, tool: "run_command", ok: false, summary: "Killed" }),
    );
    expect(late.status).toBe("stopped");
    expect(late.steps[0]).toMatchObject({ ok: false, summary: "Killed" });
    expect(applyEvent(late, ev("starting")).status).toBe("stopped");
  });

  it("says a step was interrupted and is resuming, until the run moves on", () => {
    const interrupted = foldEvents(seed, [
      ev("starting"),
      ev("thinking", { iteration: 1, of: 5 }),
      ev("tool_call", { iteration: 1, tool: "run_command", description: "Run `npm test`" }),
      ev("resuming", { step: "act-1", attempt: 2 }),
    ]);
    expect(interrupted).toMatchObject({ status: "running", resuming: { attempt: 2 } });
    // The retried step saves its result: the run is going again.
    const resumed = applyEvent(
      interrupted,
      ev("tool_result", { iteration: 1, tool: "run_command", ok: true, summary: "ok" }),
    );
    expect(resumed.resuming).toBeUndefined();
    expect(resumed.steps[0]).toMatchObject({ ok: true });
    // A late resuming row cannot reopen a finished run.
    const done = applyEvent(resumed, ev("complete", { reply: "done" }));
    expect(applyEvent(done, ev("resuming", { step: "finish", attempt: 3 })).resuming).toBeUndefined();
  });

  it("shows unusable model output as a failed step, and why a run failed", () => {
    const failed = foldEvents(seed, [
      ev("starting"),
      ev("thinking", { iteration: 1, of: 5 }),
      ev("tool_result", { iteration: 1, tool: "invalid_output", ok: false, summary: "Your reply could not be read" }),
      ev("failed", { error: "The model's reply could not be used 4 times in a row" }),
    ]);
    expect(failed.steps).toEqual([
      {
        iteration: 1,
        tool: "invalid_output",
        description: "Unusable model output",
        ok: false,
        summary: "Your reply could not be read",
      },
    ]);
    expect(failed).toMatchObject({ status: "failed", error: "The model's reply could not be used 4 times in a row" });
  });

  it("keeps a finished command's output and the reason it failed on its step", () => {
    const output =
      "$ ./build.sh\n(exited with code 3 after 0.2 s)\nstdout:\ncompiling\nstderr:\nerror: missing semicolon\n";
    const run = foldEvents(seed, [
      ev("starting"),
      ev("thinking", { iteration: 1, of: 5 }),
      ev("tool_call", { iteration: 1, tool: "run_command", description: "Run `./build.sh`" }),
      ev("tool_result", { iteration: 1, tool: "run_command", ok: false, summary: "Exit code 3", output }),
    ]);
    expect(run.steps).toEqual([
      { iteration: 1, tool: "run_command", description: "Run `./build.sh`", ok: false, summary: "Exit code 3", output },
    ]);
    expect(shownOutput(run.steps[0]!)).toBe(output);
    // Events written before steps carried output still fold.
    const older = foldEvents(seed, [
      ev("tool_result", { iteration: 1, tool: "run_command", ok: true, summary: "Exit code 0" }),
    ]);
    expect(older.steps[0]?.output).toBeUndefined();
  });
});

describe("connections the sandbox refused", () => {
  it("shows them on the step that ran the command", () => {
    const run = foldEvents(seed, [
      ev("starting"),
      ev("tool_call", { iteration: 1, tool: "run_command", description: "Run `curl https://example.com`" }),
      ev("tool_result", { iteration: 1, tool: "run_command", ok: false, summary: "Exit code 56" }),
      ev("egress_refused", {
        iteration: 1,
        tool: "run_command",
        refused: [
          { host: "example.com", port: 443, reason: "not on the allow-list", at: "2026-12-01T00:00:00.000Z" },
          { bogus: true },
        ],
      }),
    ]);
    expect(run.steps[0]).toMatchObject({ ok: false, refused: ["example.com:443 (not on the allow-list)"] });
    // A malformed or stray event changes nothing.
    const stray = foldEvents(seed, [ev("egress_refused", { iteration: 4, refused: "x" })]);
    expect(stray.steps).toEqual([]);
  });
});

describe("a finished step's output under its line", () => {
  const step = { iteration: 1, tool: "run_command", description: "Run `ls`" };
  it("shows a multi-line result and any failure's message, not a one-line success that restates the summary", () => {
    expect(
      shownOutput({
        ...step,
        ok: true,
        summary: "Exit code 0",
        output: "$ ls\n(exited with code 0 after 0.1 s)\nstdout:\na\n",
      }),
    ).toMatch(/stdout:\na/);
    expect(
      shownOutput({
        ...step,
        ok: false,
        summary: "Could not read x: no such…",
        output: "Error: Could not read x: no such file in the workspace",
      }),
    ).toBe("Error: Could not read x: no such file in the workspace");
    expect(
      shownOutput({
        ...step,
        tool: "todo_write",
        ok: true,
        summary: "Update the todo list",
        output: "Todo list updated.",
      }),
    ).toBeUndefined();
    expect(shownOutput({ ...step, ok: true, summary: "Exit code 0" })).toBeUndefined();
    expect(shownOutput({ ...step, ok: false, summary: "Killed", output: "Killed" })).toBeUndefined();
  });
});

describe("the live card's notices", () => {
  it("says when the conversation was compacted and when the agent was told it repeats itself, each once", () => {
    const starting = ev("starting", {});
    const compacted = ev("compacted", { iteration: 12, turns: 9, summarizedTurns: 9, summaryTokens: 340 });
    const stuck = ev("stuck_warning", {
      iteration: 14,
      pattern: "repeated_action",
      repeats: 3,
      description: "ran `npm test` 3 times in a row with the same result",
    });
    const run = foldEvents(seed, [starting, compacted, stuck, compacted]);
    expect(run.notices).toEqual([
      {
        iteration: 12,
        kind: "compacted",
        text: "The conversation was compacted to fit the model's context: 9 earlier steps summarized in about 340 tokens. The full history is kept.",
      },
      {
        iteration: 14,
        kind: "stuck",
        text: "The agent seemed to be going round in circles (it ran `npm test` 3 times in a row with the same result); Dyno told it to change course.",
      },
    ]);
  });
});

describe("the live card's progress", () => {
  const at = (status: string, iteration: number, maxIterations = 50) =>
    progressOf({ ...foldEvents(seed, []), status: status as never, iteration, maxIterations });

  it("counts iterations against the cap while the run goes", () => {
    expect(at("running", 4)).toEqual({ label: "Iteration 4 of 50", value: 4, max: 50 });
  });

  it("reads as done, with a full bar, once the run completed under its cap", () => {
    expect(at("complete", 11)).toEqual({ label: "Done in 11 iterations", value: 1, max: 1 });
    expect(at("complete", 1).label).toBe("Done in 1 iteration");
  });

  it("says when a run stopped or failed, with proper plurals and no 'after 0'", () => {
    expect(at("stopped", 0).label).toBe("Stopped before the first step");
    expect(at("stopped", 1).label).toBe("Stopped after 1 iteration");
    expect(at("stopped", 3)).toEqual({ label: "Stopped after 3 iterations", value: 3, max: 50 });
    expect(at("failed", 2).label).toBe("Failed after 2 iterations");
  });

  it("links each step to the version it took, once, and knows whether the run changed files", () => {
    const version = (id: string, kind: string, iteration: number, added = 0) =>
      ev("version", { versionId: id, number: 1, kind, iteration, added, changed: 0, deleted: 0 });
    const start = [
      ev("queued", { mode: "build", maxIterations: 5 }),
      ev("starting", { maxIterations: 5 }),
      version("v1", "run-start", 0),
      ev("tool_call", { iteration: 1, tool: "write_file", description: "Write a.txt" }),
      ev("tool_result", { iteration: 1, tool: "write_file", ok: true, summary: "Created a.txt" }),
    ];
    const before = foldEvents(seed, start);
    expect(runChangedFiles(before)).toBe(false);
    const stepVersion = version("v2", "step", 1, 1);
    const after = applyEvent(before, stepVersion);
    expect(after.steps[0]!.version).toEqual({ id: "v2", number: 1, kind: "step", added: 1, changed: 0, deleted: 0 });
    expect(runChangedFiles(after)).toBe(true);
    // The same version again (a redelivery under a new id) is not added twice.
    const again = applyEvent(after, { ...stepVersion, id: ++nextId });
    expect(again.versions.map((v) => v.id)).toEqual(["v1", "v2"]);
  });

  it("offers to undo a run only while the version it started from is kept, and to redo it once undone", () => {
    const version = (id: string, number: number, kind: string, added = 0) =>
      ev("version", { versionId: id, number, kind, iteration: kind === "step" ? 1 : 0, added, changed: 0, deleted: 0 });
    const begun = [ev("queued", { mode: "build", maxIterations: 5 }), ev("starting", { maxIterations: 5 })];
    // Started from version 7 (its run-start version), changed files in version 8; the newest version is its own.
    const fromStart = foldEvents(seed, [...begun, version("a7", 7, "run-start"), version("a8", 8, "step", 1)]);
    const own = { number: 8, kind: "step", restoredFromNumber: null };
    expect(runUndoState(fromStart, null, own)).toBe("undo");
    expect(runUndoState(fromStart, 7, own)).toBe("undo");
    expect(runUndoState(fromStart, 8, own)).toBeNull();
    // Undone: the newest version (9) restored 7, so the card offers to redo (back to 8) instead.
    const undone = { number: 9, kind: "restore", restoredFromNumber: 7 };
    expect(runUndoState(fromStart, null, undone)).toBe("redo");
    expect(runUndoState(fromStart, 9, undone)).toBeNull(); // version 8 pruned: nothing to redo to
    // Redone (10 restored 8), or another restore after the undo: undo is offered again.
    expect(runUndoState(fromStart, null, { number: 10, kind: "restore", restoredFromNumber: 8 })).toBe("undo");
    expect(runUndoState(fromStart, null, { number: 10, kind: "restore", restoredFromNumber: 3 })).toBe("undo");
    // No run-start version (the files had not changed since version 4): the one before its first, 4, is the base.
    const fromEarlier = foldEvents(seed, [...begun, version("b5", 5, "step", 1)]);
    expect(runUndoState(fromEarlier, 4, null)).toBe("undo");
    expect(runUndoState(fromEarlier, 5, null)).toBeNull();
    expect(runUndoState(fromEarlier, 4, { number: 6, kind: "restore", restoredFromNumber: 4 })).toBe("redo");
    // The project's first version: nothing before it to go back to.
    expect(runUndoState(foldEvents(seed, [...begun, version("c1", 1, "step", 1)]), null, null)).toBeNull();
    // A run that changed nothing has nothing to undo, kept or not.
    expect(runUndoState(foldEvents(seed, [...begun, version("d3", 3, "run-start")]), null, null)).toBeNull();
  });
});

describe("stream frames on the live card", () => {
  const frame = (over: Partial<StreamFrame> = {}): StreamFrame => ({
    runId: RUN,
    projectId: "p",
    iteration: 1,
    streamId: "s1",
    seq: 1,
    tool: "write_file",
    path: "index.html",
    text: "<p>",
    skipped: 0,
    at: 0,
    ...over,
  });
  const running = () =>
    foldEvents(seed, [ev("queued", { maxIterations: 5 }), ev("starting"), ev("thinking", { iteration: 1, of: 5 })]);

  it("shows the latest partial, ignores older and other runs' frames, and drops it on its durable event", () => {
    let run = applyFrame(running(), frame({ seq: 2, text: "<p>Hel" }));
    expect(run.partial).toMatchObject({ iteration: 1, tool: "write_file", path: "index.html", text: "<p>Hel" });
    // Out of order, or another run's: nothing changes.
    expect(applyFrame(run, frame({ seq: 1, text: "<p>" }))).toBe(run);
    expect(applyFrame(run, frame({ runId: "other", seq: 9 }))).toBe(run);
    run = applyEvent(run, ev("tool_call", { iteration: 1, tool: "write_file", description: "Write index.html" }));
    expect(run.partial).toBeUndefined();
    // A late frame of that step does not bring it back.
    expect(applyFrame(run, frame({ seq: 3, text: "<p>Hello" })).partial).toBeUndefined();
  });

  it("drops the partial on its stream's done frame, on stop and on the run's end", () => {
    const shown = applyFrame(running(), frame());
    expect(applyFrame(shown, frame({ done: true, seq: 5, text: "" })).partial).toBeUndefined();
    // Another stream's done leaves this one.
    expect(applyFrame(shown, frame({ streamId: "s0", done: true })).partial).toBeDefined();
    const stopping = applyEvent(shown, ev("stopping"));
    expect(stopping.partial).toBeUndefined();
    expect(applyFrame(stopping, frame({ seq: 7 })).partial).toBeUndefined();
    expect(applyEvent(shown, ev("failed", { error: "x" })).partial).toBeUndefined();
  });

  it("keeps a partial of the current step when an earlier step's late event arrives", () => {
    let run = running();
    run = applyEvent(run, ev("tool_call", { iteration: 1, tool: "list_files", description: "List" }));
    run = applyEvent(run, ev("tool_result", { iteration: 1, tool: "list_files", ok: true, summary: "ok" }));
    run = applyEvent(run, ev("thinking", { iteration: 2, of: 5 }));
    run = applyFrame(run, frame({ iteration: 2, tool: "reply_to_user", path: undefined, text: "All done" }));
    expect(run.partial).toMatchObject({ iteration: 2, text: "All done" });
    expect(applyEvent(run, ev("egress_refused", { iteration: 1, refused: [] })).partial).toBeDefined();
    expect(applyEvent(run, ev("reply", { iteration: 2, message: "All done." })).partial).toBeUndefined();
  });
});
