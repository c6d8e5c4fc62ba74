/**
 * Stuck detection: is the agent going round in circles? Four patterns, each
 * counted over the run's latest steps:
 * - repeated_action: the same action with the same result, several times in a row;
 * - alternating_actions: two actions taking turns (A, B, A, B …), each with the same result as before;
 * - repeated_failure: the same command failing with the same output, with no file changed in between
 *   (other steps, such as reading files, may come between the attempts);
 * - repeated_replies: the model's reply (the action it wrote) the same several times in a row, whatever the results.
 * Output the model got wrong is left out: AGENT_MAX_REPAIRS bounds that already.
 * The agent is first told (a note in its next turn, at `warnAfter` repeats), then, if it goes on (`stopAfter`), the
 * run ends with the reason. Pure: the same entries give the same verdict, so a retried think decides alike.
 */
import type { AgentEntry } from "../../db/schema";

export interface StuckThresholds {
  /** Repeats of a pattern before the agent is told. */
  warnAfter: number;
  /** Repeats before the run stops (only after the agent was told about that pattern). */
  stopAfter: number;
}

export type StuckPattern = "repeated_action" | "alternating_actions" | "repeated_failure" | "repeated_replies";

/** One tool step of the run: the model's reply and what came of it. */
export interface StepRecord {
  iteration: number;
  tool: string;
  /** The action as the model wrote it (its JSON). */
  action: string;
  /** The result's text, with timings and timestamps blanked out (they differ between identical runs). */
  result: string;
  ok: boolean;
  /** The step changed files in the workspace. */
  changedFiles: boolean;
  /** What it did, in a few words, for the messages: "ran `npm test`". */
  label: string;
}

export interface StuckFinding {
  pattern: StuckPattern;
  repeats: number;
  /** What the agent keeps doing, for the note and the run's end: "ran `npm test` 3 times in a row …". */
  description: string;
}

export type StuckVerdict =
  { kind: "ok" } | { kind: "warn"; finding: StuckFinding } | { kind: "stop"; finding: StuckFinding };

/** Timings and timestamps vary between two runs of the same command: they do not make a result new. */
export function normalizedResult(text: string): string {
  return text
    .replace(/\d{4}-\d\d-\d\d[T ][\d:.]+(Z|[+-]\d\d:?\d\d)?/g, "<time>")
    .replace(/\b\d+(\.\d+)?\s?(ms|s|sec|secs|seconds|m|min)\b/g, "<duration>")
    .trim();
}

function quoted(text: string, max = 80): string {
  const line = text.replace(/\s+/g, " ").trim();
  return `\`${line.length > max ? `${line.slice(0, max - 1)}…` : line}\``;
}

function labelOf(action: Record<string, unknown>): string {
  const tool = String(action.tool);
  if (tool === "run_command") return `ran ${quoted(String(action.command ?? ""))}`;
  if (tool === "write_file") return `wrote ${quoted(String(action.path ?? ""))}`;
  if (tool === "read_file") return `read ${quoted(String(action.path ?? ""))}`;
  return `called ${tool}`;
}

/** The run's tool steps, in order, from its entries (unusable output, and actions without a result yet, left out). */
export function stepsOf(entries: readonly AgentEntry[], runId: string): StepRecord[] {
  const results = new Map<number, AgentEntry>();
  for (const entry of entries)
    if (entry.runId === runId && entry.kind === "result") results.set(entry.iteration, entry);
  const steps: StepRecord[] = [];
  for (const entry of entries) {
    if (entry.runId !== runId || entry.kind !== "action") continue;
    const result = results.get(entry.iteration);
    const action = entry.payload.action as Record<string, unknown> | undefined;
    if (!result || !action) continue;
    const tool = String(action.tool);
    const ok = result.payload.ok === true;
    const changed = result.payload.filesChanged;
    steps.push({
      iteration: entry.iteration,
      tool,
      action: JSON.stringify(action),
      result: normalizedResult(String(result.payload.content ?? "")),
      ok,
      changedFiles: typeof changed === "number" ? changed > 0 : tool === "write_file" && ok,
      label: labelOf(action),
    });
  }
  return steps.sort((a, b) => a.iteration - b.iteration);
}

const same = (a: StepRecord, b: StepRecord) => a.action === b.action && a.result === b.result;

function trailing(steps: readonly StepRecord[], match: (step: StepRecord) => boolean): number {
  let count = 0;
  for (let i = steps.length - 1; i >= 0 && match(steps[i]!); i--) count++;
  return count;
}

function repeatedAction(steps: readonly StepRecord[]): StuckFinding | undefined {
  const last = steps.at(-1)!;
  const repeats = trailing(steps, (step) => same(step, last));
  return {
    pattern: "repeated_action",
    repeats,
    description: `${last.label} ${repeats} times in a row with the same result`,
  };
}

function alternatingActions(steps: readonly StepRecord[]): StuckFinding | undefined {
  const a = steps.at(-2);
  const b = steps.at(-1)!;
  if (!a || a.action === b.action) return undefined;
  let pairs = 0;
  for (let end = steps.length; end >= 2; end -= 2) {
    if (!same(steps[end - 2]!, a) || !same(steps[end - 1]!, b)) break;
    pairs++;
  }
  return {
    pattern: "alternating_actions",
    repeats: pairs,
    description: `${a.label} and ${b.label} in turn ${pairs} times, with the same results each time`,
  };
}

function repeatedFailure(steps: readonly StepRecord[]): StuckFinding | undefined {
  const last = steps.at(-1)!;
  if (last.ok || last.tool !== "run_command") return undefined;
  let repeats = 0;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    if (same(step, last)) repeats++;
    // A file changed by another step is progress: the next failure may be a new one.
    else if (step.changedFiles) break;
  }
  return {
    pattern: "repeated_failure",
    repeats,
    description: `${last.label} ${repeats} times and it failed with the same output each time, with no file changed in between`,
  };
}

function repeatedReplies(steps: readonly StepRecord[]): StuckFinding | undefined {
  const last = steps.at(-1)!;
  const repeats = trailing(steps, (step) => step.action === last.action);
  return {
    pattern: "repeated_replies",
    repeats,
    description: `${last.label} ${repeats} times in a row, the same reply each time`,
  };
}

/** The pattern the run's latest steps repeat most (undefined for a run with no steps yet). */
export function findStuck(steps: readonly StepRecord[]): StuckFinding | undefined {
  if (steps.length === 0) return undefined;
  // In this order, so a tie names the most specific pattern.
  const findings = [repeatedAction, alternatingActions, repeatedFailure, repeatedReplies]
    .map((find) => find(steps))
    .filter((finding): finding is StuckFinding => finding !== undefined);
  return findings.reduce((best, finding) => (finding.repeats > best.repeats ? finding : best));
}

/**
 * Whether to tell the agent or stop the run. A run is stopped for a pattern only once the agent was told about that
 * pattern (`warned`): the agent always gets a chance to change course first.
 */
export function stuckVerdict(
  finding: StuckFinding | undefined,
  thresholds: StuckThresholds,
  warned: ReadonlySet<StuckPattern>,
): StuckVerdict {
  if (!finding || finding.repeats < thresholds.warnAfter) return { kind: "ok" };
  if (finding.repeats >= thresholds.stopAfter && warned.has(finding.pattern)) return { kind: "stop", finding };
  return { kind: "warn", finding };
}

/** The patterns the agent has been told about in this run (its note entries). */
export function warnedPatterns(entries: readonly AgentEntry[], runId: string): Set<StuckPattern> {
  const warned = new Set<StuckPattern>();
  for (const entry of entries) {
    if (entry.runId === runId && entry.kind === "note" && typeof entry.payload.pattern === "string") {
      warned.add(entry.payload.pattern as StuckPattern);
    }
  }
  return warned;
}

/** The note the agent reads in its next turn. */
export function stuckNote(finding: StuckFinding, thresholds: StuckThresholds): string {
  return (
    `[Note from Dyno: you are going round in circles. You ${finding.description}. ` +
    "Doing it again will not change the outcome. Stop and think about why it does not work, then try a different " +
    "approach, or reply_to_user to explain what blocks you and ask the builder. " +
    `If this goes on (${thresholds.stopAfter} repeats), the run will be stopped.]`
  );
}

/** Why the run ended, for the builder. */
export function stuckReason(finding: StuckFinding): string {
  return (
    `The agent seemed stuck and was stopped: it ${finding.description}, and went on after it was told. ` +
    "Look at its last steps, then send a prompt that says what to do differently."
  );
}
