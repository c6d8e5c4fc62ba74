import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { writeDashboardMarker, type DashboardStatus } from "./engine-ui";
import { engineCacheDir, findOrBuildEngine, INNGEST_ENGINE_VERSION } from "./inngest-engine";

const saved = { ...process.env };
let scratch: string;

beforeEach(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "dyno-engine-test-"));
  // No inngest-cli on PATH for these tests.
  process.env.PATH = "/usr/bin:/bin";
});

afterEach(() => {
  process.env = { ...saved };
  rmSync(scratch, { recursive: true, force: true });
});

const quiet = { log: () => {} };

describe("finding the Inngest engine", () => {
  it("uses INNGEST_BIN first and reports the version it prints", async () => {
    process.env.INNGEST_BIN = inject("engineBin");
    const engine = await findOrBuildEngine(quiet);
    expect(engine.source).toBe("INNGEST_BIN");
    expect(engine.version).toMatch(new RegExp(`^${INNGEST_ENGINE_VERSION.replaceAll(".", "\\.")}`));
  });

  it("names INNGEST_BIN in the error when it does not run", async () => {
    process.env.INNGEST_BIN = path.join(scratch, "missing-inngest");
    await expect(findOrBuildEngine(quiet)).rejects.toThrow(/INNGEST_BIN=.*missing-inngest does not run/);
  });

  it("takes a working cached build before building", async () => {
    delete process.env.INNGEST_BIN;
    process.env.XDG_CACHE_HOME = scratch;
    const cached = path.join(engineCacheDir(), "inngest");
    mkdirSync(path.dirname(cached), { recursive: true });
    writeFileSync(cached, "#!/bin/sh\necho 'cached-build-version'\n");
    chmodSync(cached, 0o755);
    const engine = await findOrBuildEngine(quiet);
    expect(engine).toEqual({ bin: cached, source: "cache", version: "cached-build-version", dashboard: undefined });
  });

  it("keys the cache by the dashboard revision, so engines built before the dashboard are not reused", () => {
    process.env.XDG_CACHE_HOME = scratch;
    expect(engineCacheDir()).toBe(path.join(scratch, "dyno", `inngest-v${INNGEST_ENGINE_VERSION}-ui1`));
  });

  it("says what to install when there is no engine and no Go toolchain", async () => {
    delete process.env.INNGEST_BIN;
    process.env.XDG_CACHE_HOME = scratch;
    process.env.GO_BIN = path.join(scratch, "no-go-here");
    await expect(findOrBuildEngine(quiet)).rejects.toThrow(/Set INNGEST_BIN .* or install Go/);
  });
});

describe("a cached engine and its dashboard", () => {
  const skipped: DashboardStatus = { included: false, reason: "skipped: DYNO_ENGINE_UI=0", skipped: true };
  const failed: DashboardStatus = { included: false, reason: "the dashboard build failed: offline", skipped: false };

  /** A cached "engine" that prints a version, with the dashboard marker a build would have left. */
  function cacheEngine(status: DashboardStatus) {
    delete process.env.INNGEST_BIN;
    process.env.XDG_CACHE_HOME = scratch;
    // A rebuild needs Go: without it, the error shows a rebuild was attempted.
    process.env.GO_BIN = path.join(scratch, "no-go-here");
    const cached = path.join(engineCacheDir(), "inngest");
    mkdirSync(path.dirname(cached), { recursive: true });
    writeFileSync(cached, "#!/bin/sh\necho 'cached-build-version'\n");
    chmodSync(cached, 0o755);
    writeDashboardMarker(cached, status);
    return cached;
  }

  it("reports the dashboard a cached build has", async () => {
    const cached = cacheEngine({ included: true });
    const engine = await findOrBuildEngine(quiet);
    expect(engine).toMatchObject({ bin: cached, source: "cache", dashboard: { included: true } });
  });

  it("rebuilds an engine whose dashboard was skipped once DYNO_ENGINE_UI no longer says 0", async () => {
    cacheEngine(skipped);
    delete process.env.DYNO_ENGINE_UI;
    const lines: string[] = [];
    await expect(findOrBuildEngine({ log: (line) => lines.push(line) })).rejects.toThrow(/install Go/);
    expect(lines.join("\n")).toMatch(/without the dashboard \(skipped\).*rebuilding/);
  });

  it("keeps using an engine built without the dashboard while DYNO_ENGINE_UI=0", async () => {
    cacheEngine(skipped);
    process.env.DYNO_ENGINE_UI = "0";
    expect((await findOrBuildEngine(quiet)).dashboard).toEqual(skipped);
  });

  it("keeps an engine whose dashboard build failed, saying why, unless DYNO_ENGINE_UI=1 requires it", async () => {
    cacheEngine(failed);
    delete process.env.DYNO_ENGINE_UI;
    expect((await findOrBuildEngine(quiet)).dashboard).toEqual(failed);
    process.env.DYNO_ENGINE_UI = "1";
    await expect(findOrBuildEngine(quiet)).rejects.toThrow(/install Go/);
  });
});

describe("engine build folders", () => {
  it("removes the temp folders of builds whose process is gone, not those of a build still running", async () => {
    delete process.env.INNGEST_BIN;
    process.env.XDG_CACHE_HOME = scratch;
    process.env.GO_BIN = path.join(scratch, "no-go-here");
    const abandoned = path.join(scratch, "dyno", "build-2147483646-abc123");
    const running = path.join(scratch, "dyno", `build-${process.pid}-def456`);
    mkdirSync(path.join(abandoned, "pnpm-store"), { recursive: true });
    mkdirSync(running, { recursive: true });
    await expect(findOrBuildEngine(quiet)).rejects.toThrow(/install Go/);
    expect(existsSync(abandoned)).toBe(false);
    expect(existsSync(running)).toBe(true);
  });
});
