import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
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
    expect(engine).toEqual({ bin: cached, source: "cache", version: "cached-build-version" });
  });

  it("says what to install when there is no engine and no Go toolchain", async () => {
    delete process.env.INNGEST_BIN;
    process.env.XDG_CACHE_HOME = scratch;
    process.env.GO_BIN = path.join(scratch, "no-go-here");
    await expect(findOrBuildEngine(quiet)).rejects.toThrow(/Set INNGEST_BIN .* or install Go/);
  });
});
