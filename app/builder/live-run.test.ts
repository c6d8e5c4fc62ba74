import { describe, expect, it } from "vitest";
import type { ProjectEvent } from "../models/project-events";
import { applyEvent, currentStep, foldEvents } from "./live-run";

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
      ev("todos", { iteration: 2, todos: [{ id: "1", content: "Page", status: "completed" }, { id: "2", content: "Style", status: "in_progress" }] }),
      ev("files_changed", { iteration: 2, files: ["app.js", "index.html"] }),
      ev("thinking", { iteration: 3, of: 20 }),
      ev("reply", { iteration: 3, message: "Done." }),
      ev("complete", { reply: "Done." }),
    ].reduce(applyEvent, running);
    expect(done).toMatchObject({ status: "complete", iteration: 3, thinking: false, reply: "Done.", files: ["app.js", "index.html"] });
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
    const late = applyEvent(stopped, ev("tool_result", { iteration: 1, tool: "run_command", ok: false, summary: "Killed" }));
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
    const resumed = applyEvent(interrupted, ev("tool_result", { iteration: 1, tool: "run_command", ok: true, summary: "ok" }));
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
      { iteration: 1, tool: "invalid_output", description: "Unusable model output", ok: false, summary: "Your reply could not be read" },
    ]);
    expect(failed).toMatchObject({ status: "failed", error: "The model's reply could not be used 4 times in a row" });
  });
});
