/**
 * With no trusted proxy (the default, TRUST_PROXY=0), X-Forwarded-For is whatever the client wrote: the sign-in
 * rate limit ignores it and counts the connection's own address, so rotating the header buys no more guesses.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDRESS_BUDGET, failLogin } from "../support/login-budget";
import { startStack, type Stack } from "../support/stack";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
});

it("counts a client that rotates X-Forwarded-For against its own address", async () => {
  for (let i = 1; i <= ADDRESS_BUDGET; i++) {
    const forged = { "X-Forwarded-For": `198.51.100.${i}` };
    expect(await failLogin(stack.app.url, forged), `attempt ${i}`).toBe(400);
  }
  expect(await failLogin(stack.app.url, { "X-Forwarded-For": "198.51.100.250" })).toBe(429);
});
