import { describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { hasMetricsToken, metricsResponse } from "./metrics.server";

const TOKEN = "a-metrics-token-of-some-length";
const request = (authorization?: string) =>
  new Request("http://app/metrics", { headers: authorization ? { authorization } : {} });
const unreadable = {
  driver: "postgres",
  db: {
    select: () => {
      throw new Error("the database is away");
    },
  },
} as unknown as Database;

describe("metrics endpoint", () => {
  it("is off (404) without METRICS_TOKEN, whatever the request carries", async () => {
    const response = await metricsResponse(request(`Bearer ${TOKEN}`), { token: undefined, database: unreadable });
    expect(response.status).toBe(404);
    expect(await response.text()).toMatch(/METRICS_TOKEN/);
  });

  it("asks for the bearer token: none, another, or the token another way is 401", async () => {
    for (const header of [
      undefined,
      "Bearer another-token-entirely-x",
      TOKEN,
      `Bearer ${TOKEN}x`,
      `Bearer  ${TOKEN} extra`,
    ]) {
      const response = await metricsResponse(request(header), { token: TOKEN, database: unreadable });
      expect(response.status, String(header)).toBe(401);
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    expect(hasMetricsToken(request(`bearer ${TOKEN}`), TOKEN)).toBe(true);
  });

  it("still serves this process's series when the database cannot be read, and says so", async () => {
    const response = await metricsResponse(request(`Bearer ${TOKEN}`), { token: TOKEN, database: unreadable });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/^dyno_database_up 0$/m);
    expect(text).not.toMatch(/^dyno_runs\{/m);
    expect(text).toMatch(/^dyno_sse_clients\{stream="events"\} 0$/m);
  });
});
