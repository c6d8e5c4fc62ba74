/**
 * The attempt budgets, counted in a real database (PGlite, and Postgres when DATABASE_URL is set). Each test uses
 * emails and addresses of its own; "two replicas" are two AttemptLimits on one database, as two app processes are.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { availableDrivers, createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createAttemptLimits, TooManyAttemptsError, type AttemptLimits } from "./rate-limit.server";

const freshEmail = () => `rl-${randomUUID()}@example.test`;
const freshAddress = () =>
  `10.${[0, 0, 0].map(() => Math.floor(Math.random() * 250)).join(".")}-${randomUUID().slice(0, 8)}`;

describe.each(availableDrivers())("attempt limits (%s)", (driver) => {
  let testDb: TestDatabase;
  let limits: AttemptLimits;
  let otherReplica: AttemptLimits;

  beforeAll(async () => {
    testDb = await createTestDatabase(driver);
    limits = createAttemptLimits(testDb.database.db);
    otherReplica = createAttemptLimits(testDb.database.db);
  });

  afterAll(async () => {
    await testDb?.drop();
  });

  const checkLoginAllowed = (email: string, address: string) => limits.checkLoginAllowed(email, address);
  const countFailedLogin = (email: string, address: string) => limits.countFailedLogin(email, address);
  const clearFailedLogins = (email: string) => limits.clearFailedLogins(email);
  const countSignupAttempt = (address: string) => limits.countSignupAttempt(address);

  async function fail(email: string, address: string, times: number) {
    for (let i = 0; i < times; i++) await countFailedLogin(email, address);
  }

  describe("sign-in rate limit", () => {
    it("allows four failures for an email and refuses after the fifth, with a retry time", async () => {
      const email = freshEmail();
      const address = freshAddress();
      await fail(email, address, 4);
      await expect(checkLoginAllowed(email, address)).resolves.toBeUndefined();
      await fail(email, address, 1);
      const refused = await checkLoginAllowed(email, address).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(TooManyAttemptsError);
      expect((refused as TooManyAttemptsError).status).toBe(429);
      expect((refused as TooManyAttemptsError).message).toMatch(
        /Too many sign-in attempts\. Try again in 1[45] minutes\./,
      );
      expect((refused as TooManyAttemptsError).retryAfterSeconds).toBeGreaterThan(60);
    });

    it("counts per email, whichever address the attempts come from", async () => {
      const email = freshEmail();
      for (let i = 0; i < 5; i++) await countFailedLogin(email, freshAddress());
      await expect(checkLoginAllowed(email, freshAddress())).rejects.toBeInstanceOf(TooManyAttemptsError);
    });

    it("leaves other emails alone, from the same address too", async () => {
      const locked = freshEmail();
      const address = freshAddress();
      await fail(locked, address, 5);
      await expect(checkLoginAllowed(locked, address)).rejects.toBeInstanceOf(TooManyAttemptsError);
      await expect(checkLoginAllowed(freshEmail(), address)).resolves.toBeUndefined();
      await expect(checkLoginAllowed(freshEmail(), freshAddress())).resolves.toBeUndefined();
    });

    it("starts an email's count again after a successful sign-in", async () => {
      const email = freshEmail();
      const address = freshAddress();
      await fail(email, address, 4);
      await clearFailedLogins(email);
      await fail(email, address, 4); // 8 in all: would be refused had the count not been cleared
      await expect(checkLoginAllowed(email, address)).resolves.toBeUndefined();
      await fail(email, address, 1);
      await expect(checkLoginAllowed(email, address)).rejects.toBeInstanceOf(TooManyAttemptsError);
    });

    it("refuses an address after 30 failures spread over many emails", async () => {
      const address = freshAddress();
      for (let i = 0; i < 30; i++) await countFailedLogin(freshEmail(), address);
      await expect(checkLoginAllowed(freshEmail(), address)).rejects.toBeInstanceOf(TooManyAttemptsError);
      await expect(checkLoginAllowed(freshEmail(), freshAddress())).resolves.toBeUndefined();
    });
  });

  describe("sign-up rate limit", () => {
    it("allows 50 sign-up attempts from an address in 15 minutes, refuses the 51st with a retry time, and counts per address", async () => {
      const address = freshAddress();
      for (let i = 0; i < 50; i++) await countSignupAttempt(address);
      const refused = await countSignupAttempt(address).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(TooManyAttemptsError);
      expect((refused as TooManyAttemptsError).status).toBe(429);
      expect((refused as TooManyAttemptsError).message).toMatch(
        /^Too many sign-up attempts\. Try again in 1[45] minutes\.$/,
      );
      await expect(countSignupAttempt(freshAddress())).resolves.toBeUndefined();
    });

    it("keeps sign-up and sign-in budgets apart", async () => {
      const address = freshAddress();
      for (let i = 0; i < 50; i++) await countSignupAttempt(address);
      await expect(checkLoginAllowed(freshEmail(), address)).resolves.toBeUndefined();
    });
  });

  describe("across app replicas", () => {
    it("refuses on one replica an email whose failures were counted on another", async () => {
      const email = freshEmail();
      for (let i = 0; i < 5; i++) await (i % 2 ? limits : otherReplica).countFailedLogin(email, freshAddress());
      await expect(otherReplica.checkLoginAllowed(email, freshAddress())).rejects.toBeInstanceOf(TooManyAttemptsError);
      await expect(limits.checkLoginAllowed(email, freshAddress())).rejects.toBeInstanceOf(TooManyAttemptsError);
      // A sign-in that succeeds on either replica clears it for both.
      await otherReplica.clearFailedLogins(email);
      await expect(limits.checkLoginAllowed(email, freshAddress())).resolves.toBeUndefined();
    });

    it("lets exactly the budget through when two replicas count sign-ups at once", async () => {
      const address = freshAddress();
      const outcomes = await Promise.allSettled(
        Array.from({ length: 60 }, (_, i) => (i % 2 ? limits : otherReplica).countSignupAttempt(address)),
      );
      expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(50);
      const refusals = outcomes.filter((o) => o.status === "rejected").map((o) => (o as PromiseRejectedResult).reason);
      expect(refusals).toHaveLength(10);
      for (const refusal of refusals) expect(refusal).toBeInstanceOf(TooManyAttemptsError);
    });
  });
});
