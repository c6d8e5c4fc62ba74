/**
 * What this process counts for Prometheus (prom-client), below every other
 * layer so that any of them can count: the agent's steps (inngest/), the
 * model's tokens (inngest/agent/model/), the sandbox's limits (sandbox/).
 * These are this process's own counts: with replicas, each one serves its
 * own and Prometheus adds them up. What the database knows for all replicas
 * (runs by status) is read at scrape time by app/http/metrics.server.ts.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const metricsRegistry = new Registry();

let collectingProcessMetrics = false;

/**
 * Node's own series (CPU, memory, event-loop lag, GC), from the first scrape on: their observers (GC, the event
 * loop's delay) cost a little all the time, so a process nobody scrapes does not run them.
 */
export function collectProcessMetrics(): void {
  if (collectingProcessMetrics) return;
  collectingProcessMetrics = true;
  collectDefaultMetrics({ register: metricsRegistry, prefix: "dyno_" });
}

/** "think-12" -> "think", "think-3-compacted" -> "think", "act-4" -> "act", "start" -> "start". */
export function stepKind(stepId: string): string {
  return stepId.replace(/-\d+(-compacted)?$/, "");
}

const stepDuration = new Histogram({
  name: "dyno_agent_step_duration_seconds",
  help: "Time an agent step's body took in this process (a memoized step that replays is not counted)",
  labelNames: ["step", "outcome"] as const,
  // A step is a database write (ms), a model call (s) or a command (up to SANDBOX_COMMAND_TIMEOUT).
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
  registers: [metricsRegistry],
});

/** Times one execution of a step's body, labelled by its kind and whether it returned or threw. */
export async function timeStep<T>(stepId: string, body: () => Promise<T>): Promise<T> {
  const stop = stepDuration.startTimer({ step: stepKind(stepId) });
  try {
    const value = await body();
    stop({ outcome: "ok" });
    return value;
  } catch (error) {
    stop({ outcome: "error" });
    throw error;
  }
}

const modelTokens = new Counter({
  name: "dyno_model_tokens_total",
  help: "Tokens the model providers reported for calls made by this process",
  labelNames: ["call", "direction"] as const,
  registers: [metricsRegistry],
});

export type ModelCall = "next_action" | "title" | "summary";

export function countModelTokens(call: ModelCall, usage: { inputTokens: number; outputTokens: number }): void {
  if (usage.inputTokens > 0) modelTokens.inc({ call, direction: "input" }, usage.inputTokens);
  if (usage.outputTokens > 0) modelTokens.inc({ call, direction: "output" }, usage.outputTokens);
}

const sandboxLimitHits = new Counter({
  name: "dyno_sandbox_limit_hits_total",
  help: "Sandbox commands and app processes ended (or, for cpu, held back) by a resource limit or the command timeout",
  labelNames: ["limit", "process"] as const,
  registers: [metricsRegistry],
});

export type LimitName = "memory" | "processes" | "cpu" | "disk" | "timeout";

export function countSandboxLimitHit(limit: LimitName, process: "command" | "app"): void {
  sandboxLimitHits.inc({ limit, process });
}
