import { describe, expect, it } from "vitest";
import { hashPassword, verifyPassword } from "./password.server";

describe("password hashing", () => {
  it("hashes with argon2id, salted: the same password never hashes the same twice", async () => {
    const first = await hashPassword("correct horse battery staple");
    const second = await hashPassword("correct horse battery staple");
    expect(first).toMatch(/^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/);
    expect(second).toMatch(/^\$argon2id\$/);
    expect(first).not.toBe(second);
    expect(first).not.toContain("correct horse");
  });

  it("verifies the right password and refuses a wrong one", async () => {
    const stored = await hashPassword("correct horse battery staple");
    expect(await verifyPassword(stored, "correct horse battery staple")).toBe(true);
    expect(await verifyPassword(stored, "correct horse battery stapler")).toBe(false);
    expect(await verifyPassword(stored, "Correct horse battery staple")).toBe(false);
    expect(await verifyPassword(stored, "")).toBe(false);
  });

  it("never verifies against a stored value that is not an argon2 hash", async () => {
    expect(await verifyPassword("!disabled", "!disabled")).toBe(false);
    expect(await verifyPassword("!disabled", "anything at all")).toBe(false);
    expect(await verifyPassword("", "")).toBe(false);
    // A plain-text "hash" must not compare equal to the password either.
    expect(await verifyPassword("hunter2hunter2", "hunter2hunter2")).toBe(false);
  });

  it("never verifies a missing user, whatever the password", async () => {
    expect(await verifyPassword(undefined, "correct horse battery staple")).toBe(false);
    expect(await verifyPassword(undefined, "")).toBe(false);
  });

  it("refuses a damaged argon2 hash instead of throwing", async () => {
    const stored = await hashPassword("correct horse battery staple");
    expect(await verifyPassword(`${stored.slice(0, -4)}AAAA`, "correct horse battery staple")).toBe(false);
    expect(await verifyPassword("$argon2id$garbage", "correct horse battery staple")).toBe(false);
  });
});
