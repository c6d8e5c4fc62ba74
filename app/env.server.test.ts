import { describe, expect, it } from "vitest";
import { durationMs, inngestDevInProductionWarning, parseEnv } from "./env.server";

describe("parseEnv", () => {
  it("has an embedded default for everything", () => {
    const env = parseEnv({});
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env).toMatchObject({
      NODE_ENV: "development",
      HOST: "127.0.0.1",
      PORT: 3000,
      DYNO_DATA_DIR: ".data",
      AGENT_MAX_ITERATIONS: 50,
      AGENT_RUN_TIMEOUT: "2h",
    });
  });

  it("treats an empty DATABASE_URL as unset (PGlite)", () => {
    expect(parseEnv({ DATABASE_URL: "" }).DATABASE_URL).toBeUndefined();
  });

  it("names each bad variable and why", () => {
    const bad = () =>
      parseEnv({
        DATABASE_URL: "mysql://x@y/z",
        PORT: "http",
        AGENT_RUN_TIMEOUT: "soon",
        SANDBOX_PROVIDER: "docker",
        LOCAL_SANDBOX_ISOLATION: "maybe",
        AGENT_BASE_URL: "not a url",
      });
    expect(bad).toThrow(/DATABASE_URL: must be a postgres:\/\/ URL/);
    expect(bad).toThrow(/PORT: a port number/);
    expect(bad).toThrow(/AGENT_RUN_TIMEOUT: a duration such as 45s, 90m or 2h/);
    expect(bad).toThrow(/SANDBOX_PROVIDER: .*'local' \| 'modal'/);
    expect(bad).toThrow(/LOCAL_SANDBOX_ISOLATION: .*'bubblewrap' \| 'none'/);
    expect(bad).toThrow(/AGENT_BASE_URL: /);
  });

  const production = { NODE_ENV: "production", SESSION_SECRET: "s".repeat(32) };
  const keys = { INNGEST_SIGNING_KEY: "signkey-prod-abc", INNGEST_EVENT_KEY: "key" };

  it("asks for the Inngest keys in production", () => {
    expect(() => parseEnv(production)).toThrow(/INNGEST_SIGNING_KEY: required in production/);
    expect(parseEnv({ ...production, ...keys }).NODE_ENV).toBe("production");
  });

  it("refuses INNGEST_DEV in production unless explicitly allowed, and then warns", () => {
    expect(() => parseEnv({ ...production, INNGEST_DEV: "1" })).toThrow(
      /INNGEST_DEV: refused in production: dev mode runs unsigned step calls[\s\S]*DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION=1/,
    );
    expect(() => parseEnv({ ...production, INNGEST_DEV: "http://127.0.0.1:8288", ...keys })).toThrow(
      /INNGEST_DEV: refused/,
    );
    expect(() => parseEnv({ ...production, INNGEST_DEV: "1", DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION: "0" })).toThrow(
      /INNGEST_DEV: refused/,
    );
    const allowed = parseEnv({ ...production, INNGEST_DEV: "1", DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION: "1" });
    expect(allowed.DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION).toBe(true);
    expect(inngestDevInProductionWarning(allowed)).toMatch(/^WARNING: INNGEST_DEV is set in production.*signature/);
    // INNGEST_DEV=0 is not dev mode; outside production dev mode is the default way to run.
    expect(inngestDevInProductionWarning(parseEnv({ ...production, ...keys, INNGEST_DEV: "0" }))).toBeUndefined();
    expect(
      inngestDevInProductionWarning(parseEnv({ INNGEST_DEV: "1", DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION: "1" })),
    ).toBeUndefined();
    expect(parseEnv({}).DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION).toBe(false);
    expect(() => parseEnv({ DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION: "yes" })).toThrow(
      /DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION: 1 or 0/,
    );
  });

  it("reads the origin the engine calls the app at, and needs it in production when HOST is a wildcard", () => {
    expect(parseEnv({}).INNGEST_SERVE_ORIGIN).toBeUndefined();
    expect(parseEnv({ INNGEST_SERVE_ORIGIN: "" }).INNGEST_SERVE_ORIGIN).toBeUndefined();
    expect(parseEnv({ INNGEST_SERVE_ORIGIN: "http://app:3000/" }).INNGEST_SERVE_ORIGIN).toBe("http://app:3000");
    expect(parseEnv({ INNGEST_SERVE_ORIGIN: "https://Dyno.Example.com" }).INNGEST_SERVE_ORIGIN).toBe(
      "https://dyno.example.com",
    );
    for (const bad of [
      "app:3000",
      "http://app:3000/api/inngest",
      "http://app:3000?x=1",
      "ftp://app",
      "http://u:p@app",
    ]) {
      expect(() => parseEnv({ INNGEST_SERVE_ORIGIN: bad }), bad).toThrow(/INNGEST_SERVE_ORIGIN: /);
    }
    expect(parseEnv({ ...production, ...keys }).INNGEST_SERVE_ORIGIN).toBeUndefined();
    for (const HOST of ["0.0.0.0", "::"]) {
      expect(() => parseEnv({ ...production, ...keys, HOST })).toThrow(
        /INNGEST_SERVE_ORIGIN: required in production when HOST is/,
      );
      expect(parseEnv({ ...production, ...keys, HOST, INNGEST_SERVE_ORIGIN: "http://app:3000" }).HOST).toBe(HOST);
    }
    expect(parseEnv({ HOST: "0.0.0.0" }).INNGEST_SERVE_ORIGIN).toBeUndefined();
  });

  it("asks for a session secret of 32+ characters in production, and only there", () => {
    expect(() => parseEnv({ NODE_ENV: "production", ...keys })).toThrow(/SESSION_SECRET: required in production/);
    expect(() => parseEnv({ NODE_ENV: "production", ...keys, SESSION_SECRET: "short" })).toThrow(
      /SESSION_SECRET: at least 32 characters/,
    );
    expect(parseEnv({}).SESSION_SECRET).toBeUndefined();
  });

  it("reads the preview server's port and origin", () => {
    expect(parseEnv({}).PREVIEW_PORT).toBeUndefined();
    expect(parseEnv({ PREVIEW_PORT: "4001", PREVIEW_ORIGIN: "https://*.preview.example.test/" })).toMatchObject({
      PREVIEW_PORT: 4001,
      PREVIEW_ORIGIN: "https://*.preview.example.test",
    });
    expect(parseEnv({ PREVIEW_ORIGIN: "" }).PREVIEW_ORIGIN).toBeUndefined();
    expect(() => parseEnv({ PREVIEW_PORT: "web" })).toThrow(/PREVIEW_PORT: a port number/);
    expect(() => parseEnv({ PREVIEW_ORIGIN: "preview" })).toThrow(/PREVIEW_ORIGIN/);
    // One origin for every project (decision 009) is gone: each project needs a host of its own (decision 021).
    expect(() => parseEnv({ PREVIEW_ORIGIN: "https://preview.example.test" })).toThrow(
      /PREVIEW_ORIGIN: .*wildcard origin such as https:\/\/\*\.preview\.example\.com/,
    );
  });

  it("reads the sandbox's resource limits, with defaults", () => {
    expect(parseEnv({})).toMatchObject({
      SANDBOX_MEMORY_LIMIT: 2 * 1024 ** 3,
      SANDBOX_PIDS_LIMIT: 512,
      SANDBOX_CPU_LIMIT: 1,
      SANDBOX_DISK_LIMIT: 2 * 1024 ** 3,
    });
    expect(
      parseEnv({
        SANDBOX_MEMORY_LIMIT: "512m",
        SANDBOX_PIDS_LIMIT: "64",
        SANDBOX_CPU_LIMIT: "0.5",
        SANDBOX_DISK_LIMIT: "1.5G",
      }),
    ).toMatchObject({
      SANDBOX_MEMORY_LIMIT: 512 * 1024 ** 2,
      SANDBOX_PIDS_LIMIT: 64,
      SANDBOX_CPU_LIMIT: 0.5,
      SANDBOX_DISK_LIMIT: 1.5 * 1024 ** 3,
    });
    expect(() => parseEnv({ SANDBOX_MEMORY_LIMIT: "lots" })).toThrow(/SANDBOX_MEMORY_LIMIT: a size such as 512m or 1g/);
    expect(() => parseEnv({ SANDBOX_MEMORY_LIMIT: "1m" })).toThrow(/SANDBOX_MEMORY_LIMIT: at least 32m/);
    expect(() => parseEnv({ SANDBOX_PIDS_LIMIT: "2" })).toThrow(/SANDBOX_PIDS_LIMIT/);
    expect(() => parseEnv({ SANDBOX_CPU_LIMIT: "0" })).toThrow(/SANDBOX_CPU_LIMIT/);
  });

  it("reads the app process's timeouts and log bound, with defaults", () => {
    expect(parseEnv({})).toMatchObject({ APP_IDLE_TIMEOUT: "15m", APP_START_TIMEOUT: "60s", APP_LOG_LIMIT: 2000 });
    expect(parseEnv({ APP_IDLE_TIMEOUT: "2h", APP_START_TIMEOUT: "3m", APP_LOG_LIMIT: "500" })).toMatchObject({
      APP_IDLE_TIMEOUT: "2h",
      APP_START_TIMEOUT: "3m",
      APP_LOG_LIMIT: 500,
    });
    expect(() => parseEnv({ APP_IDLE_TIMEOUT: "soon" })).toThrow(/APP_IDLE_TIMEOUT: a duration/);
    expect(() => parseEnv({ APP_LOG_LIMIT: "5" })).toThrow(/APP_LOG_LIMIT/);
  });

  it("reads the sandbox's egress policy: the registry only by default, more hosts as a list", () => {
    expect(parseEnv({})).toMatchObject({ SANDBOX_EGRESS: "registry", SANDBOX_EGRESS_ALLOW: [] });
    expect(
      parseEnv({ SANDBOX_EGRESS: "off", SANDBOX_EGRESS_ALLOW: " pypi.org, files.pythonhosted.org:443,," }),
    ).toMatchObject({
      SANDBOX_EGRESS: "off",
      SANDBOX_EGRESS_ALLOW: ["pypi.org", "files.pythonhosted.org:443"],
    });
    expect(() => parseEnv({ SANDBOX_EGRESS: "open" })).toThrow(/SANDBOX_EGRESS: .*'registry' \| 'off'/);
    expect(parseEnv({}).SANDBOX_REGISTRY_TOKEN).toBeUndefined();
    expect(parseEnv({ SANDBOX_REGISTRY_TOKEN: "t" }).SANDBOX_REGISTRY_TOKEN).toBe("t");
    expect(() => parseEnv({ SANDBOX_EGRESS_ALLOW: "https://pypi.org" })).toThrow(
      /SANDBOX_EGRESS_ALLOW: "https:\/\/pypi.org" is not a host or host:port/,
    );
    // Modal takes what the local proxy does not (an IPv4 CIDR); each provider checks its own.
    expect(parseEnv({ SANDBOX_PROVIDER: "modal", SANDBOX_EGRESS_ALLOW: "10.0.0.0/8" }).SANDBOX_EGRESS_ALLOW).toEqual([
      "10.0.0.0/8",
    ]);
  });

  it("reads how often and how patiently runs are reconciled with the engine", () => {
    expect(parseEnv({})).toMatchObject({ RUN_RECONCILE_INTERVAL: "1m", RUN_RECONCILE_GRACE: "1m" });
    expect(parseEnv({ RUN_RECONCILE_INTERVAL: "0s", RUN_RECONCILE_GRACE: "30s" })).toMatchObject({
      RUN_RECONCILE_INTERVAL: "0s",
      RUN_RECONCILE_GRACE: "30s",
    });
    expect(() => parseEnv({ RUN_RECONCILE_INTERVAL: "often" })).toThrow(/RUN_RECONCILE_INTERVAL: a duration/);
  });

  it("reads the app's public origin as an origin (no path), unset by default", () => {
    expect(parseEnv({}).APP_ORIGIN).toBeUndefined();
    expect(parseEnv({ APP_ORIGIN: "" }).APP_ORIGIN).toBeUndefined();
    expect(parseEnv({ APP_ORIGIN: "https://dyno.example.test/" }).APP_ORIGIN).toBe("https://dyno.example.test");
    expect(parseEnv({ APP_ORIGIN: "http://127.0.0.1:3000" }).APP_ORIGIN).toBe("http://127.0.0.1:3000");
    expect(() => parseEnv({ APP_ORIGIN: "dyno.example.test" })).toThrow(/APP_ORIGIN/);
    expect(() => parseEnv({ APP_ORIGIN: "ftp://dyno.example.test" })).toThrow(/APP_ORIGIN: an http/);
  });

  it("reads the completion webhook settings: the operator's URL and secret together, private targets refused by default", () => {
    expect(parseEnv({}).DYNO_WEBHOOK_URL).toBeUndefined();
    expect(parseEnv({}).DYNO_WEBHOOK_SECRET).toBeUndefined();
    expect(parseEnv({})).toMatchObject({
      WEBHOOK_ALLOW_PRIVATE: false,
      WEBHOOK_TIMEOUT: "10s",
      WEBHOOK_ATTEMPTS: 6,
      WEBHOOK_RETRY_DELAY: "10s",
    });
    const secret = "s".repeat(16);
    expect(
      parseEnv({ DYNO_WEBHOOK_URL: "https://hooks.example.test/dyno", DYNO_WEBHOOK_SECRET: secret }),
    ).toMatchObject({ DYNO_WEBHOOK_URL: "https://hooks.example.test/dyno", DYNO_WEBHOOK_SECRET: secret });
    expect(() => parseEnv({ DYNO_WEBHOOK_URL: "https://hooks.example.test/dyno" })).toThrow(
      /DYNO_WEBHOOK_SECRET: DYNO_WEBHOOK_URL and DYNO_WEBHOOK_SECRET go together/,
    );
    expect(() => parseEnv({ DYNO_WEBHOOK_SECRET: secret })).toThrow(/DYNO_WEBHOOK_URL: .*go together/);
    expect(() => parseEnv({ DYNO_WEBHOOK_URL: "ftp://x.test/", DYNO_WEBHOOK_SECRET: secret })).toThrow(/an http/);
    expect(parseEnv({ WEBHOOK_ALLOW_PRIVATE: "1" }).WEBHOOK_ALLOW_PRIVATE).toBe(true);
    expect(() => parseEnv({ WEBHOOK_ATTEMPTS: "0" })).toThrow(/WEBHOOK_ATTEMPTS/);
  });

  it("reads the long-project settings: context windows, budgets, prices and stuck thresholds, with defaults", () => {
    expect(parseEnv({})).toMatchObject({
      AGENT_CONTEXT_TOKENS: 32_000,
      AGENT_CONTEXT_WINDOWS: "",
      AGENT_RUN_TOKEN_BUDGET: 2_000_000,
      AGENT_DAILY_TOKEN_BUDGET: 20_000_000,
      AGENT_PRICES: "",
      AGENT_STUCK_WARN_AFTER: 3,
      AGENT_STUCK_STOP_AFTER: 5,
    });
    expect(
      parseEnv({
        AGENT_CONTEXT_WINDOWS: "openai-compatible/llama3.1=8192, gpt-4o=128000",
        AGENT_PRICES: "openai/gpt-4.1=2/8,llama3.1=0/0",
        AGENT_RUN_TOKEN_BUDGET: "0",
      }),
    ).toMatchObject({ AGENT_RUN_TOKEN_BUDGET: 0 });
    const bad = () =>
      parseEnv({
        AGENT_CONTEXT_TOKENS: "1000",
        AGENT_CONTEXT_WINDOWS: "llama3=big",
        AGENT_PRICES: "gpt-4.1=2",
        AGENT_STUCK_WARN_AFTER: "4",
        AGENT_STUCK_STOP_AFTER: "4",
      });
    expect(bad).toThrow(/AGENT_CONTEXT_TOKENS: /);
    expect(bad).toThrow(/AGENT_CONTEXT_WINDOWS: model=tokens pairs/);
    expect(bad).toThrow(/AGENT_PRICES: model=input\/output pairs/);
    expect(bad).toThrow(/AGENT_STUCK_STOP_AFTER: must be greater than AGENT_STUCK_WARN_AFTER/);
  });

  it("bounds each project's history above the largest file a version keeps", () => {
    expect(parseEnv({})).toMatchObject({ VERSIONS_MAX_HISTORY_SIZE: 1024 ** 3, VERSIONS_MAX_FILE_SIZE: 5 * 1024 ** 2 });
    expect(parseEnv({ VERSIONS_MAX_HISTORY_SIZE: "300m" })).toMatchObject({
      VERSIONS_MAX_HISTORY_SIZE: 300 * 1024 ** 2,
    });
    expect(() => parseEnv({ VERSIONS_MAX_HISTORY_SIZE: "4m" })).toThrow(
      /VERSIONS_MAX_HISTORY_SIZE: must be greater than VERSIONS_MAX_FILE_SIZE/,
    );
    expect(() => parseEnv({ VERSIONS_MAX_HISTORY_SIZE: "lots" })).toThrow(/VERSIONS_MAX_HISTORY_SIZE/);
  });

  it("reads durations in seconds, minutes, hours and days", () => {
    expect([durationMs("45s"), durationMs("90m"), durationMs("2h"), durationMs("1d")]).toEqual([
      45_000, 5_400_000, 7_200_000, 86_400_000,
    ]);
    expect(() => durationMs("2 hours")).toThrow(/not a duration/);
  });
});
