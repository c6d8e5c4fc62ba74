import { describe, expect, it } from "vitest";
import { countModelTokens, countSandboxLimitHit, metricsRegistry, stepKind, timeStep } from "./registry";

async function value(name: string, labels: Record<string, string>): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric(name)!.get();
  const match = metric.values.find(
    (v) =>
      Object.entries(labels).every(([k, l]) => v.labels[k] === l) &&
      Object.keys(v.labels).length >= Object.keys(labels).length,
  );
  return match?.value ?? 0;
}

describe("metrics registry", () => {
  it("names a step by its kind, without the iteration", () => {
    expect(
      ["start", "title", "think-12", "think-3-compacted", "act-4", "compact-7", "finish", "stopped"].map(stepKind),
    ).toEqual(["start", "title", "think", "think", "act", "compact", "finish", "stopped"]);
  });

  it("times a step that returns as ok and one that throws as error, and passes both through", async () => {
    expect(await timeStep("act-2", async () => 42)).toBe(42);
    await expect(timeStep("act-3", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    const metric = await metricsRegistry.getSingleMetric("dyno_agent_step_duration_seconds")!.get();
    const countOf = (outcome: string) =>
      (metric.values as { metricName?: string; labels: Record<string, unknown>; value: number }[]).find(
        (v) =>
          v.metricName === "dyno_agent_step_duration_seconds_count" &&
          v.labels.step === "act" &&
          v.labels.outcome === outcome,
      )?.value;
    expect(countOf("ok")).toBe(1);
    expect(countOf("error")).toBe(1);
  });

  it("counts tokens by call and direction, leaving out zeros, and limits by kind and process", async () => {
    countModelTokens("title", { inputTokens: 10, outputTokens: 0 });
    countModelTokens("title", { inputTokens: 5, outputTokens: 3 });
    expect(await value("dyno_model_tokens_total", { call: "title", direction: "input" })).toBe(15);
    expect(await value("dyno_model_tokens_total", { call: "title", direction: "output" })).toBe(3);
    countSandboxLimitHit("memory", "app");
    countSandboxLimitHit("memory", "app");
    countSandboxLimitHit("timeout", "command");
    expect(await value("dyno_sandbox_limit_hits_total", { limit: "memory", process: "app" })).toBe(2);
    expect(await value("dyno_sandbox_limit_hits_total", { limit: "timeout", process: "command" })).toBe(1);
    expect(await value("dyno_sandbox_limit_hits_total", { limit: "memory", process: "command" })).toBe(0);
  });
});
