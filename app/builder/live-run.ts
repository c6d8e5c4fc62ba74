/**
 * The live card's state, folded from a run's progress events. The same
 * reducer runs on the server (from the rows the loader read) and in the
 * browser (as the event stream delivers new rows), so a refresh in the
 * middle of a run renders exactly what the open page had. Browser-safe: no
 * server imports.
 */
import { isFinished, type RunStatus } from "../../db/run-status";
import type { StreamFrame } from "../../db/run-stream-frame";
import { doneIn, failedAfter, stoppedAfter } from "../../db/run-wording";
import type { ProjectEvent } from "../models/project-events";

export type TodoState = "pending" | "in_progress" | "completed";
export interface LiveTodo {
  id: string;
  content: string;
  status: TodoState;
}

/** One tool call: the model's choice, then (once it ran) its outcome. */
export interface LiveStep {
  iteration: number;
  tool: string;
  description: string;
  /** Undefined while the tool runs. */
  ok?: boolean;
  /** One line: what happened, or why it failed (exit code, timeout, limit). */
  summary?: string;
  /** The tool's result text as the model read it (a command's status, stdout and stderr), bounded. */
  output?: string;
  /** Connections the sandbox refused while it ran: "example.com:443 (not on the allow-list)". */
  refused?: string[];
  /** The version this step's file changes made (decision 026), for its diff. */
  version?: LiveVersion;
}

/** A version a run took, as its `version` event tells it. */
export interface LiveVersion {
  id: string;
  number: number;
  kind: "run-start" | "step" | "run-end";
  added: number;
  changed: number;
  deleted: number;
}

/**
 * Something Dyno did to keep a long run going that the builder should know about: the conversation was compacted
 * (older turns summarized to stay under the model's context window), or the agent was told it is repeating itself.
 */
export interface LiveNotice {
  iteration: number;
  kind: "compacted" | "stuck";
  text: string;
}

export interface LiveRun {
  id: string;
  status: RunStatus;
  mode: "build" | "ask";
  iteration: number;
  maxIterations: number;
  /** The model is choosing the next action. */
  thinking: boolean;
  steps: LiveStep[];
  todos: LiveTodo[];
  /** Every file the run changed, sorted. */
  files: string[];
  reply?: string;
  error?: string;
  notices: LiveNotice[];
  /** Tokens the run has used so far and their estimated cost (USD; absent when the model's price is unknown). */
  usage?: { inputTokens: number; outputTokens: number; costUsd?: number };
  /** A step was interrupted (app restart, database away) and is being run again: its attempt, from 2. */
  resuming?: { attempt: number };
  /** Versions the run took, oldest first. */
  versions: LiveVersion[];
  /**
   * What the model is writing for the current step, as it writes it (decision 035): ephemeral, from stream
   * frames, dropped when the step's durable event arrives.
   */
  partial?: LivePartial;
  /** The highest event id folded in: later deliveries of older ids are ignored. */
  lastEventId: number;
}

export interface LivePartial {
  iteration: number;
  streamId: string;
  seq: number;
  tool?: string;
  path?: string;
  /** The text so far (its end, when `skipped` characters were cut from its front). */
  text: string;
  skipped: number;
}

export interface LiveRunSeed {
  id: string;
  mode: "build" | "ask";
  maxIterations: number;
}

export function startLiveRun(seed: LiveRunSeed): LiveRun {
  return {
    ...seed,
    status: "queued",
    iteration: 0,
    thinking: false,
    steps: [],
    todos: [],
    files: [],
    notices: [],
    versions: [],
    lastEventId: 0,
  };
}

const num = (value: unknown, fallback: number) => (typeof value === "number" ? value : fallback);
const str = (value: unknown) => (typeof value === "string" ? value : undefined);

/** Applies one event of this run. Events of other runs, and ones already applied, change nothing. */
export function applyEvent(run: LiveRun, event: ProjectEvent): LiveRun {
  if (event.runId !== run.id || event.id <= run.lastEventId) return run;
  // Any later progress means the interrupted step is going again.
  const next: LiveRun = { ...run, lastEventId: event.id, resuming: undefined };
  const { data } = event;
  if (run.partial && endsPartial(event, run.partial)) next.partial = undefined;
  // A late event (a step finishing as the stop lands) must not undo the end.
  const finished = isFinished(run.status);
  const usage = data.usage as Record<string, unknown> | undefined;
  if (usage && typeof usage.inputTokens === "number" && typeof usage.outputTokens === "number") {
    next.usage = {
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      ...(typeof usage.costUsd === "number" ? { costUsd: usage.costUsd } : {}),
    };
  }
  switch (event.type) {
    case "queued":
      next.mode = data.mode === "ask" ? "ask" : "build";
      next.maxIterations = num(data.maxIterations, run.maxIterations);
      break;
    case "starting":
      if (!finished && run.status !== "stopping") next.status = "running";
      next.maxIterations = num(data.maxIterations, run.maxIterations);
      break;
    case "thinking":
      next.iteration = num(data.iteration, run.iteration);
      next.maxIterations = num(data.of, run.maxIterations);
      next.thinking = !finished;
      break;
    case "tool_call":
      next.thinking = false;
      next.steps = [
        ...run.steps,
        {
          iteration: num(data.iteration, run.iteration),
          tool: str(data.tool) ?? "tool",
          description: str(data.description) ?? "",
        },
      ];
      break;
    case "tool_result": {
      next.thinking = false;
      const iteration = num(data.iteration, run.iteration);
      const outcome = { ok: data.ok === true, summary: str(data.summary) ?? "", output: str(data.output) };
      const index = run.steps.findIndex((s) => s.iteration === iteration && s.ok === undefined);
      next.steps =
        index >= 0
          ? run.steps.map((s, i) => (i === index ? { ...s, ...outcome } : s))
          : // Output the model could not use: no tool_call came first.
            [
              ...run.steps,
              { iteration, tool: str(data.tool) ?? "tool", description: "Unusable model output", ...outcome },
            ];
      break;
    }
    case "egress_refused": {
      const iteration = num(data.iteration, run.iteration);
      const refused = (Array.isArray(data.refused) ? data.refused : [])
        .map((item: unknown) => {
          const { host, port, reason } = (item ?? {}) as Record<string, unknown>;
          return typeof host === "string" ? `${host}:${num(port, 0)} (${str(reason) ?? "refused"})` : undefined;
        })
        .filter((line): line is string => line !== undefined);
      const index = run.steps.findLastIndex((s) => s.iteration === iteration);
      if (index >= 0 && refused.length) next.steps = run.steps.map((s, i) => (i === index ? { ...s, refused } : s));
      break;
    }
    case "todos":
      next.todos = Array.isArray(data.todos) ? (data.todos as LiveTodo[]) : run.todos;
      break;
    case "files_changed": {
      const files = Array.isArray(data.files) ? data.files.filter((f): f is string => typeof f === "string") : [];
      next.files = [...new Set([...run.files, ...files])].sort();
      break;
    }
    case "compacted": {
      const turns = num(data.turns, 0);
      const text =
        `The conversation was compacted to fit the model's context: ${turns} earlier step${turns === 1 ? "" : "s"} ` +
        `summarized in about ${num(data.summaryTokens, 0)} tokens. The full history is kept.`;
      next.notices = [...run.notices, { iteration: num(data.iteration, run.iteration), kind: "compacted", text }];
      break;
    }
    case "stuck_warning": {
      const text = `The agent seemed to be going round in circles (it ${str(data.description) ?? "repeated itself"}); Dyno told it to change course.`;
      next.notices = [...run.notices, { iteration: num(data.iteration, run.iteration), kind: "stuck", text }];
      break;
    }
    case "version": {
      const kind = data.kind === "run-start" || data.kind === "run-end" ? data.kind : "step";
      const version: LiveVersion = {
        id: str(data.versionId) ?? "",
        number: num(data.number, 0),
        kind,
        added: num(data.added, 0),
        changed: num(data.changed, 0),
        deleted: num(data.deleted, 0),
      };
      if (!version.id || (run.versions ?? []).some((v) => v.id === version.id)) break;
      next.versions = [...(run.versions ?? []), version];
      if (kind === "step") {
        const iteration = num(data.iteration, run.iteration);
        const index = run.steps.findLastIndex((s) => s.iteration === iteration);
        if (index >= 0) next.steps = run.steps.map((s, i) => (i === index ? { ...s, version } : s));
      }
      break;
    }
    case "reply":
      next.thinking = false;
      next.reply = str(data.message);
      break;
    case "resuming":
      if (!finished) next.resuming = { attempt: num(data.attempt, 2) };
      break;
    case "stopping":
      if (!finished) next.status = "stopping";
      break;
    case "complete":
    case "failed":
    case "stopped":
      next.status = event.type;
      next.thinking = false;
      if (event.type === "failed") next.error = str(data.error);
      if (event.type === "complete") next.reply = str(data.reply) ?? run.reply;
      break;
  }
  return next;
}

/** Events that close the step a partial belongs to: its durable answer, a later step, the run's end. */
const PARTIAL_ENDERS = new Set(["tool_call", "tool_result", "reply", "stopping", "complete", "failed", "stopped"]);

function endsPartial(event: ProjectEvent, partial: LivePartial): boolean {
  const iteration = typeof event.data.iteration === "number" ? event.data.iteration : undefined;
  if (event.type === "thinking") return iteration !== undefined && iteration > partial.iteration;
  if (!PARTIAL_ENDERS.has(event.type)) return false;
  return iteration === undefined || iteration >= partial.iteration;
}

/**
 * Applies a stream frame: the model's partial answer for the current step. A frame of another run, of a step
 * whose durable event already arrived, older than the one shown, or for a run that is ending changes nothing;
 * a `done` frame drops its stream's partial.
 */
export function applyFrame(run: LiveRun, frame: StreamFrame): LiveRun {
  if (frame.runId !== run.id) return run;
  const shown = run.partial;
  if (frame.done) return shown?.streamId === frame.streamId ? { ...run, partial: undefined } : run;
  if (isFinished(run.status) || run.status === "stopping") return run;
  // The durable answer of this step (or a later one) is in: a late frame must not bring the partial back.
  if (run.steps.some((s) => s.iteration >= frame.iteration) || frame.iteration < run.iteration) return run;
  if (run.reply !== undefined && frame.iteration <= run.iteration) return run;
  if (shown && shown.streamId === frame.streamId && shown.seq >= frame.seq) return run;
  const partial: LivePartial = {
    iteration: frame.iteration,
    streamId: frame.streamId,
    seq: frame.seq,
    ...(frame.tool ? { tool: frame.tool } : {}),
    ...(frame.path !== undefined ? { path: frame.path } : {}),
    text: frame.text,
    skipped: frame.skipped,
  };
  return { ...run, partial };
}

/** The run's own changes, as "Undo this run" would undo them: false when it changed no file. */
export function runChangedFiles(run: LiveRun): boolean {
  return (run.versions ?? []).some((v) => v.kind !== "run-start" && v.added + v.changed + v.deleted > 0);
}

/** The project's newest version as the stopped card needs it: was it a restore, and of which version. */
export interface NewestVersion {
  number: number;
  kind: string;
  restoredFromNumber: number | null;
}

/**
 * What the stopped card offers for the run's files: "undo" (back to the files the run started from), "redo" (the
 * newest version is that undo: back to the files the run left), or nothing. Undo needs the version before the run
 * (its run-start version, else the one numbered just below its first: numbers run on by one) still kept, not
 * pruned by the history's size bound; `oldestKept` is the oldest kept version's number, null when none was pruned.
 */
export function runUndoState(
  run: LiveRun,
  oldestKept: number | null,
  newest: NewestVersion | null,
): "undo" | "redo" | null {
  if (!runChangedFiles(run)) return null;
  const own = run.versions ?? [];
  const base = own.find((v) => v.kind === "run-start")?.number ?? (own[0] ? own[0].number - 1 : 0);
  const last = own.at(-1)?.number ?? 0;
  if (newest && newest.kind === "restore" && newest.number > last && newest.restoredFromNumber === base)
    return oldestKept === null || last >= oldestKept ? "redo" : null;
  return base >= 1 && (oldestKept === null || base >= oldestKept) ? "undo" : null;
}

export function foldEvents(seed: LiveRunSeed, events: ProjectEvent[]): LiveRun {
  return events.reduce(applyEvent, startLiveRun(seed));
}

/**
 * The output a finished step shows under its line: a command's log, a file
 * read, a list, or a failure's whole message. A successful one-line result
 * ("Todo list updated.") only restates the step's summary, so it is left out.
 */
export function shownOutput(step: LiveStep): string | undefined {
  const output = step.output?.trim();
  if (!output || output === step.summary) return undefined;
  return step.ok === false || output.includes("\n") ? step.output : undefined;
}

/** The step in flight, if the run is active and a tool is running. */
export function currentStep(run: LiveRun): LiveStep | undefined {
  if (isFinished(run.status)) return undefined;
  const last = run.steps.at(-1);
  return last && last.ok === undefined ? last : undefined;
}

export interface RunProgress {
  label: string;
  value: number;
  max: number;
}

/**
 * The progress bar: iteration n of the cap while the run goes; once it has
 * ended, how it ended. A complete run's bar is full: the cap is a limit, not
 * a target, so "11 of 50" would read as unfinished.
 */
export function progressOf(run: LiveRun): RunProgress {
  const max = Math.max(run.maxIterations, run.iteration, 1);
  switch (run.status) {
    case "complete":
      return { label: doneIn(run.iteration), value: 1, max: 1 };
    case "stopped":
      return { label: stoppedAfter(run.iteration), value: run.iteration, max };
    case "failed":
      return { label: failedAfter(run.iteration), value: run.iteration, max };
    default:
      return { label: `Iteration ${run.iteration} of ${run.maxIterations}`, value: run.iteration, max };
  }
}
