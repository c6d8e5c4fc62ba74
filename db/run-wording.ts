/**
 * How a run's length reads to a builder, in one place for the live card and
 * the transcript's notices. No database import: the browser bundle uses it.
 */
export function iterationCount(n: number): string {
  return `${n} iteration${n === 1 ? "" : "s"}`;
}

/** "Stopped before the first step", "Stopped after 1 iteration", "Stopped after 3 iterations". */
export function stoppedAfter(iterations: number): string {
  return iterations > 0 ? `Stopped after ${iterationCount(iterations)}` : "Stopped before the first step";
}

/** "Failed before the first step", "Failed after 2 iterations". */
export function failedAfter(iterations: number): string {
  return iterations > 0 ? `Failed after ${iterationCount(iterations)}` : "Failed before the first step";
}

/** "Done in 1 iteration", "Done in 11 iterations". */
export function doneIn(iterations: number): string {
  return `Done in ${iterationCount(iterations)}`;
}
