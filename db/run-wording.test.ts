import { describe, expect, it } from "vitest";
import { doneIn, failedAfter, iterationCount, stoppedAfter } from "./run-wording";

describe("how a run's length reads", () => {
  it("counts iterations with the right plural", () => {
    expect([0, 1, 2, 11].map(iterationCount)).toEqual(["0 iterations", "1 iteration", "2 iterations", "11 iterations"]);
  });

  it("says a run stopped or failed before its first step instead of after 0 iterations", () => {
    expect([0, 1, 3].map(stoppedAfter)).toEqual([
      "Stopped before the first step",
      "Stopped after 1 iteration",
      "Stopped after 3 iterations",
    ]);
    expect([0, 1, 2].map(failedAfter)).toEqual([
      "Failed before the first step",
      "Failed after 1 iteration",
      "Failed after 2 iterations",
    ]);
  });

  it("says how long a finished run took", () => {
    expect([1, 11].map(doneIn)).toEqual(["Done in 1 iteration", "Done in 11 iterations"]);
  });
});
