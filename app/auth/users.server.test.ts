/**
 * Credentials (pure), then sign-up and sign-in against a real database
 * (PGlite, or Postgres when DATABASE_URL is set): the app's process-wide
 * database, pointed at a fresh one before first use.
 */
import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reserveTestDatabase, type ReservedDatabase } from "../../tests/support/database";
import { readCredentials } from "./form.server";
import { TooManyAttemptsError } from "./rate-limit.server";
import { Credentials, EmailTakenError, InvalidLoginError, signUp, verifyLogin } from "./users.server";

const messagesOf = (input: unknown): string[] => {
  const parsed = Credentials.safeParse(input);
  return parsed.success ? [] : parsed.error.issues.map((i) => i.message);
};

describe("Credentials", () => {
  it("trims and lower-cases the email, and leaves the password exactly as typed", () => {
    expect(Credentials.parse({ email: "  Ada.Lovelace@Example.TEST \n", password: "  Pass word 1 " })).toEqual({
      email: "ada.lovelace@example.test",
      password: "  Pass word 1 ",
    });
  });

  it("rejects a missing or malformed email, saying so", () => {
    expect(messagesOf({ password: "long enough" })).toEqual(["Enter your email address."]);
    expect(messagesOf({ email: "not-an-email", password: "long enough" })).toEqual(["Enter a valid email address."]);
    expect(messagesOf({ email: "   ", password: "long enough" })).toEqual(["Enter a valid email address."]);
    expect(messagesOf({ email: `${"a".repeat(250)}@example.test`, password: "long enough" })).toContain(
      "That email address is too long.",
    );
  });

  it("rejects a short or overlong password, naming the limit", () => {
    expect(messagesOf({ email: "a@example.test" })).toEqual(["Enter a password."]);
    expect(messagesOf({ email: "a@example.test", password: "1234567" })).toEqual(["Use at least 8 characters."]);
    expect(messagesOf({ email: "a@example.test", password: "x".repeat(201) })).toEqual(["Use at most 200 characters."]);
    expect(messagesOf({ email: "a@example.test", password: "12345678" })).toEqual([]);
    expect(messagesOf({ email: "a@example.test", password: "x".repeat(200) })).toEqual([]);
  });

  it("reads the sign-in form's fields", () => {
    const form = new FormData();
    form.set("email", " Bob@Example.TEST");
    form.set("password", "hunter22!");
    expect(readCredentials(form)).toEqual({ email: "bob@example.test", password: "hunter22!" });
    expect(() => readCredentials(new FormData())).toThrow(/Enter your email address[\s\S]*Enter a password/);
  });
});

describe("sign-up and sign-in", () => {
  let reserved: ReservedDatabase;
  let database: typeof import("../../db");
  const ADDRESS = "192.0.2.10";
  const freshEmail = () => `user-${randomUUID()}@example.test`;

  beforeAll(async () => {
    reserved = await reserveTestDatabase();
    Object.assign(process.env, reserved.env);
    database = await import("../../db");
    await database.getDatabase().migrate();
  });

  afterAll(async () => {
    await database?.closeDatabase();
    await reserved?.release();
  });

  it("stores an argon2id hash, never the password", async () => {
    const email = freshEmail();
    const { id } = await signUp({ email, password: "correct horse" }, ADDRESS);
    const [row] = await database.db.select().from(database.schema.users).where(eq(database.schema.users.id, id));
    expect(row!.email).toBe(email);
    expect(row!.passwordHash).toMatch(/^\$argon2id\$/);
    expect(row!.passwordHash).not.toContain("correct horse");
  });

  it("refuses a second account for the same email, in any case", async () => {
    const email = freshEmail();
    await signUp(Credentials.parse({ email, password: "correct horse" }), ADDRESS);
    await expect(
      signUp(Credentials.parse({ email: email.toUpperCase(), password: "other password" }), ADDRESS),
    ).rejects.toThrow(EmailTakenError);
  });

  it("signs in with the right password, however the email is typed", async () => {
    const email = freshEmail();
    const { id } = await signUp({ email, password: "correct horse" }, ADDRESS);
    expect(
      await verifyLogin(Credentials.parse({ email: ` ${email.toUpperCase()} `, password: "correct horse" }), ADDRESS),
    ).toEqual({ id });
  });

  it("answers a wrong password and an unknown email alike", async () => {
    const email = freshEmail();
    await signUp({ email, password: "correct horse" }, ADDRESS);
    const wrong = await verifyLogin({ email, password: "wrong horse" }, ADDRESS).catch((e: unknown) => e);
    const unknown = await verifyLogin({ email: freshEmail(), password: "correct horse" }, ADDRESS).catch(
      (e: unknown) => e,
    );
    expect(wrong).toBeInstanceOf(InvalidLoginError);
    expect(unknown).toBeInstanceOf(InvalidLoginError);
    expect((wrong as Error).message).toBe("Wrong email or password.");
    expect((unknown as Error).message).toBe("Wrong email or password.");
  });

  it("never signs in a user whose hash is disabled", async () => {
    const email = freshEmail();
    await database.db.insert(database.schema.users).values({ email, passwordHash: "!disabled" });
    await expect(verifyLogin({ email, password: "!disabled" }, ADDRESS)).rejects.toThrow(InvalidLoginError);
  });

  it("after five failures refuses the email even with the right password; other emails still sign in", async () => {
    const email = freshEmail();
    const other = freshEmail();
    await signUp({ email, password: "correct horse" }, ADDRESS);
    const { id: otherId } = await signUp({ email: other, password: "correct horse" }, ADDRESS);
    for (let i = 0; i < 5; i++)
      await expect(verifyLogin({ email, password: `wrong ${i}` }, ADDRESS)).rejects.toThrow(InvalidLoginError);
    await expect(verifyLogin({ email, password: "correct horse" }, ADDRESS)).rejects.toThrow(TooManyAttemptsError);
    await expect(verifyLogin({ email, password: "wrong again" }, ADDRESS)).rejects.toThrow(TooManyAttemptsError);
    expect(await verifyLogin({ email: other, password: "correct horse" }, ADDRESS)).toEqual({ id: otherId });
  });

  it("forgets an email's failures once it signs in", async () => {
    const email = freshEmail();
    const { id } = await signUp({ email, password: "correct horse" }, ADDRESS);
    const address = "192.0.2.11";
    for (let i = 0; i < 4; i++)
      await expect(verifyLogin({ email, password: "wrong horse" }, address)).rejects.toThrow(InvalidLoginError);
    expect(await verifyLogin({ email, password: "correct horse" }, address)).toEqual({ id });
    for (let i = 0; i < 4; i++)
      await expect(verifyLogin({ email, password: "wrong horse" }, address)).rejects.toThrow(InvalidLoginError);
    expect(await verifyLogin({ email, password: "correct horse" }, address)).toEqual({ id });
  });
});
