import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseEnv, type Env } from "../app/env.server";
import { forgetProjectHistory, MAX_OPEN_HISTORIES, projectHistory } from "./config";

let e: Env;
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "dyno-open-histories-"));
  e = parseEnv({ NODE_ENV: "test", DYNO_DATA_DIR: dataDir, SANDBOX_PROVIDER: "local" });
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("projectHistory", () => {
  it("keeps the most recently used histories open, and closes the least recently used past the bound", () => {
    const ids = Array.from({ length: MAX_OPEN_HISTORIES + 1 }, (_, i) => `open-history-${i}`);
    const first = projectHistory(ids[0]!, e)!;
    const second = projectHistory(ids[1]!, e)!;
    const closed = vi.spyOn(second, "close");
    expect(projectHistory(ids[0]!, e)).toBe(first); // used again: now the most recent
    for (const id of ids.slice(2)) projectHistory(id, e);
    // Past the bound by one: the least recently used (the second) was dropped and closed, the first kept.
    expect(closed).toHaveBeenCalledOnce();
    expect(projectHistory(ids[0]!, e)).toBe(first);
    const reopened = projectHistory(ids[1]!, e)!;
    expect(reopened).not.toBe(second);
    expect(reopened.gitDir).toBe(second.gitDir);
    for (const id of ids) forgetProjectHistory(id, e);
  });

  it("keeps none for a Modal project", () => {
    expect(projectHistory("modal-project", e, "modal")).toBeNull();
  });
});
