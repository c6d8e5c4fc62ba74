import { describe, expect, it } from "vitest";
import { canMoveRun, isFinished, RUN_STATUSES } from "./run-status";

describe("run status moves", () => {
  it("only moves forward", () => {
    expect(canMoveRun("queued", "running")).toBe(true);
    expect(canMoveRun("running", "stopping")).toBe(true);
    expect(canMoveRun("stopping", "stopped")).toBe(true);
    // A run whose last step finished as the stop arrived did complete.
    expect(canMoveRun("stopping", "complete")).toBe(true);
    expect(canMoveRun("stopping", "running")).toBe(false);
    expect(canMoveRun("running", "queued")).toBe(false);
  });

  it("never leaves a finished status", () => {
    for (const from of RUN_STATUSES.filter(isFinished)) {
      for (const to of RUN_STATUSES) expect(canMoveRun(from, to)).toBe(from === to);
    }
  });
});
