/**
 * Measures what the engine keeps for each run: the JSON of every completed
 * step's output (the memoized step state), and warns when one step output is
 * large, since the durability rule is that outputs stay tiny and the
 * conversation lives in Postgres. The benchmark reads the totals.
 */
import { Middleware } from "inngest";

/** One step's output above this is a design smell worth a warning. */
export const LARGE_STEP_OUTPUT_BYTES = 4 * 1024;

export interface StepStateTotals {
  steps: number;
  bytes: number;
  largest: number;
}

// On globalThis: the app's modules may be loaded twice (Vite's SSR graph and plain Node).
const key = Symbol.for("dyno.stepStateTotals");
const totals = ((globalThis as { [key]?: Map<string, StepStateTotals> })[key] ??= new Map());

/** Step-state totals for one of our runs (by run id), as this process recorded them. */
export function stepStateOf(runId: string): StepStateTotals | undefined {
  return totals.get(runId);
}

export class StepStateMeter extends Middleware.BaseMiddleware {
  readonly id = "dyno-step-state";

  override onStepComplete({ ctx, output, stepInfo }: Middleware.OnStepCompleteArgs): void {
    const bytes = Buffer.byteLength(JSON.stringify(output ?? null));
    const data = ctx.event.data as { runId?: unknown } | undefined;
    const runId = typeof data?.runId === "string" ? data.runId : ctx.runId;
    const entry = totals.get(runId) ?? { steps: 0, bytes: 0, largest: 0 };
    entry.steps += 1;
    entry.bytes += bytes;
    entry.largest = Math.max(entry.largest, bytes);
    totals.set(runId, entry);
    if (totals.size > 10_000) totals.delete(totals.keys().next().value!);
    if (bytes > LARGE_STEP_OUTPUT_BYTES) {
      console.warn(
        `step ${stepInfo.options?.id ?? stepInfo.hashedId} of run ${runId} returned ${bytes} bytes: keep step outputs small`,
      );
    }
  }
}
