/**
 * Behind a reverse proxy (TRUST_PROXY=1), the sign-in rate limit counts the client the proxy names in
 * X-Forwarded-For, not the proxy itself (which would give every client one shared budget), and a client cannot
 * escape it by writing an X-Forwarded-For of its own: only the hop the proxy appended counts.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDRESS_BUDGET, failLogin } from "../support/login-budget";
import { startStack, type Stack } from "../support/stack";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ env: { TRUST_PROXY: "1" } });
});

afterAll(async () => {
  await stack?.stop();
});

it("counts failures per forwarded client: one locked out, another served, a forged first hop ignored", async () => {
  const viaProxy = (client: string, forged?: string) => ({
    "X-Forwarded-For": forged ? `${forged}, ${client}` : client,
  });
  for (let i = 1; i <= ADDRESS_BUDGET; i++) {
    // Each attempt forges a different first hop, as an attacker behind the proxy would.
    expect(await failLogin(stack.app.url, viaProxy("203.0.113.7", `198.51.100.${i}`)), `attempt ${i}`).toBe(400);
  }
  expect(await failLogin(stack.app.url, viaProxy("203.0.113.7", "198.51.100.200"))).toBe(429);
  expect(await failLogin(stack.app.url, viaProxy("203.0.113.7"))).toBe(429);
  // Another client of the same proxy keeps its own budget.
  expect(await failLogin(stack.app.url, viaProxy("203.0.113.8"))).toBe(400);
});
