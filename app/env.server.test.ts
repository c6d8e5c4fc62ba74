import { describe, expect, it } from "vitest";
import { durationMs, parseEnv } from "./env.server";

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

  it("asks for the Inngest keys in production unless a dev server is used", () => {
    const secret = { SESSION_SECRET: "s".repeat(32) };
    expect(() => parseEnv({ NODE_ENV: "production", ...secret })).toThrow(/INNGEST_SIGNING_KEY: required in production/);
    expect(parseEnv({ NODE_ENV: "production", INNGEST_DEV: "1", ...secret }).NODE_ENV).toBe("production");
    expect(
      parseEnv({ NODE_ENV: "production", INNGEST_SIGNING_KEY: "signkey-prod-abc", INNGEST_EVENT_KEY: "key", ...secret })
        .NODE_ENV,
    ).toBe("production");
  });

  it("asks for a session secret of 32+ characters in production, and only there", () => {
    expect(() => parseEnv({ NODE_ENV: "production", INNGEST_DEV: "1" })).toThrow(/SESSION_SECRET: required in production/);
    expect(() => parseEnv({ NODE_ENV: "production", INNGEST_DEV: "1", SESSION_SECRET: "short" })).toThrow(
      /SESSION_SECRET: at least 32 characters/,
    );
    expect(parseEnv({}).SESSION_SECRET).toBeUndefined();
  });

  it("reads the preview server's port and origin", () => {
    expect(parseEnv({}).PREVIEW_PORT).toBeUndefined();
    expect(parseEnv({ PREVIEW_PORT: "4001", PREVIEW_ORIGIN: "https://preview.example.test" })).toMatchObject({
      PREVIEW_PORT: 4001,
      PREVIEW_ORIGIN: "https://preview.example.test",
    });
    expect(() => parseEnv({ PREVIEW_PORT: "web" })).toThrow(/PREVIEW_PORT: a port number/);
    expect(() => parseEnv({ PREVIEW_ORIGIN: "preview" })).toThrow(/PREVIEW_ORIGIN/);
  });

  it("reads the app's public origin as an origin (no path), unset by default", () => {
    expect(parseEnv({}).APP_ORIGIN).toBeUndefined();
    expect(parseEnv({ APP_ORIGIN: "" }).APP_ORIGIN).toBeUndefined();
    expect(parseEnv({ APP_ORIGIN: "https://dyno.example.test/" }).APP_ORIGIN).toBe("https://dyno.example.test");
    expect(parseEnv({ APP_ORIGIN: "http://127.0.0.1:3000" }).APP_ORIGIN).toBe("http://127.0.0.1:3000");
    expect(() => parseEnv({ APP_ORIGIN: "dyno.example.test" })).toThrow(/APP_ORIGIN/);
    expect(() => parseEnv({ APP_ORIGIN: "ftp://dyno.example.test" })).toThrow(/APP_ORIGIN: an http/);
  });

  it("reads durations in seconds, minutes, hours and days", () => {
    expect([durationMs("45s"), durationMs("90m"), durationMs("2h"), durationMs("1d")]).toEqual([
      45_000, 5_400_000, 7_200_000, 86_400_000,
    ]);
    expect(() => durationMs("2 hours")).toThrow(/not a duration/);
  });
});
