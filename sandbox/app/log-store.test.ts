import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppLogStore, LineSplitter, readAppLogFile } from "./log-store";

let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), "dyno-app-log-"));
});

afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe("the app's log", () => {
  it("keeps the newest lines within its bounds, with seq numbers that carry on after a reopen", async () => {
    const dir = path.join(folder, "bounded");
    const log = AppLogStore.open(dir, { maxLines: 10, maxLinesPerSecond: 10_000 });
    for (let i = 0; i < 25; i++) log.append("stdout", `line ${i}`);
    const all = log.read();
    expect(all.lines.map((l) => l.text)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 15}`));
    expect(all).toMatchObject({ nextSeq: 25, truncated: true });
    expect(log.read({ sinceSeq: 20 })).toMatchObject({ truncated: false, nextSeq: 25 });
    expect(log.read({ sinceSeq: 20 }).lines.map((l) => l.seq)).toEqual([20, 21, 22, 23, 24]);
    expect(log.read({ sinceSeq: 20, maxLines: 2 })).toMatchObject({ truncated: true });
    await log.flush();

    // Another process (or the next Dyno) reads the same lines from disk, and numbering goes on.
    expect(readAppLogFile(dir, { sinceSeq: 23, bounds: { maxLines: 10 } }).lines.map((l) => l.text)).toEqual([
      "line 23",
      "line 24",
    ]);
    const reopened = AppLogStore.open(dir, { maxLines: 10 });
    expect(reopened.append("system", "after")?.seq).toBe(25);
    await reopened.flush();
    // The file is rewritten before it holds much more than the bound.
    const fileLines = (await readFile(path.join(dir, "log.jsonl"), "utf8")).trim().split("\n");
    expect(fileLines.length).toBeLessThanOrEqual(20);
  });

  it("bounds bytes and line length, and strips terminal colours", () => {
    const log = AppLogStore.open(path.join(folder, "bytes"), { maxBytes: 4096, maxLineChars: 100 });
    log.append("stderr", `\x1b[31mred\x1b[0m ${"x".repeat(500)}`);
    const [line] = log.read().lines;
    expect(line!.text).toMatch(/^red x{96}… \[404 more characters\]$/);
    for (let i = 0; i < 100; i++) log.append("system", "y".repeat(90));
    const kept = log.read().lines;
    expect(kept.length).toBeLessThan(100);
    expect(kept.reduce((sum, l) => sum + l.text.length, 0)).toBeLessThan(4096);
  });

  it("drops output past its rate and says how much", () => {
    const log = AppLogStore.open(path.join(folder, "rate"), { maxLinesPerSecond: 5 });
    for (let i = 0; i < 50; i++) log.append("stdout", `spam ${i}`);
    expect(log.read().lines.length).toBeLessThanOrEqual(10);
    // System and browser lines are never rate-dropped.
    expect(log.append("browser", "Uncaught Error")).toBeDefined();
  });

  it("splits output into lines, cutting one that never ends", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line), 4);
    splitter.push("ab\ncd");
    splitter.push("efghij\nk");
    // A whole line is passed on as it is (the log cuts it, saying how much); one that never ends is cut here.
    splitter.push("\nlmnopqrst");
    splitter.end();
    expect(lines).toEqual(["ab", "cdefghij", "k", "lmno", "pqrs", "t"]);
  });
});
