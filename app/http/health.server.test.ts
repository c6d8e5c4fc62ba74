import { afterEach, describe, expect, it, vi } from "vitest";
import type { Database } from "../../db/client";
import { engineReachability, forgetEngineProbe, healthReport } from "./health.server";

afterEach(() => forgetEngineProbe());

const engine = { baseUrl: "http://127.0.0.1:1" };

describe("engineReachability", () => {
  it("asks the engine's /health and says what it answered", async () => {
    const fetchFn = vi.fn(async () => new Response("{}", { status: 200 }));
    expect(await engineReachability(engine, { fetchFn, now: 0 })).toEqual({ engine: "reachable" });
    expect(fetchFn).toHaveBeenCalledWith("http://127.0.0.1:1/health", expect.anything());
    forgetEngineProbe();
    const failing = vi.fn(async () => new Response("no", { status: 502 }));
    expect(await engineReachability(engine, { fetchFn: failing, now: 0 })).toEqual({
      engine: "unreachable",
      engineError: "answered 502",
    });
  });

  it("names the error of an engine that cannot be reached, and asks again only after 2 s", async () => {
    const fetchFn = vi.fn(async () => {
      throw new TypeError("fetch failed", {
        cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
      });
    });
    const first = await engineReachability(engine, { fetchFn, now: 1_000 });
    // The reason, not the engine's address: /healthz is public.
    expect(first).toEqual({ engine: "unreachable", engineError: "ECONNREFUSED" });
    await engineReachability(engine, { fetchFn, now: 2_500 });
    expect(fetchFn).toHaveBeenCalledTimes(1);
    await engineReachability(engine, { fetchFn, now: 3_001 });
    expect(fetchFn).toHaveBeenCalledTimes(2);
  });

  it("says an engine that hangs did not answer within 1 s", async () => {
    const hanging = vi.fn(
      (_url: string | URL | Request, init?: RequestInit) =>
        new Promise<Response>((_resolve, reject) =>
          init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)),
        ),
    );
    expect(await engineReachability(engine, { fetchFn: hanging as typeof fetch, now: 0 })).toEqual({
      engine: "unreachable",
      engineError: "no answer within 1 s",
    });
  });

  it("does not probe Inngest Cloud", async () => {
    const fetchFn = vi.fn();
    expect(await engineReachability({ baseUrl: "https://api.inngest.com" }, { fetchFn })).toEqual({
      engine: "not checked",
    });
    expect(fetchFn).not.toHaveBeenCalled();
  });
});

describe("healthReport", () => {
  it("is 503 with the database's error when the database cannot be read", async () => {
    const database = {
      driver: "postgres",
      db: {
        execute: async () =>
          Promise.reject(Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:5432"), { code: "ECONNREFUSED" })),
      },
    } as unknown as Database;
    const report = await healthReport(database);
    expect(report.status).toBe(503);
    expect(report.body).toMatchObject({
      ok: false,
      database: "postgres",
      error: "the database cannot be read (ECONNREFUSED)",
    });
    // /healthz is public: the database's address stays in the server's log.
    expect(JSON.stringify(report.body)).not.toContain("10.0.0.5");
    expect(report.body.engine).toBeDefined();
  });
});
