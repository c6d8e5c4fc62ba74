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
    expect(() => parseEnv({ NODE_ENV: "production" })).toThrow(/INNGEST_SIGNING_KEY: required in production/);
    expect(parseEnv({ NODE_ENV: "production", INNGEST_DEV: "1" }).NODE_ENV).toBe("production");
    expect(
      parseEnv({ NODE_ENV: "production", INNGEST_SIGNING_KEY: "signkey-prod-abc", INNGEST_EVENT_KEY: "key" }).NODE_ENV,
    ).toBe("production");
  });

  it("reads durations in seconds, minutes, hours and days", () => {
    expect([durationMs("45s"), durationMs("90m"), durationMs("2h"), durationMs("1d")]).toEqual([
      45_000, 5_400_000, 7_200_000, 86_400_000,
    ]);
    expect(() => durationMs("2 hours")).toThrow(/not a duration/);
  });
});
