/**
 * Resolving a run's models from its row (decision 034), against a real
 * database (PGlite, or Postgres with DATABASE_URL): a server spec, a
 * builder's key opened just here, its fallback, and each way it can no
 * longer run, with a sentence and never the key.
 */
import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelKeys, runs, users } from "../../../db/schema";
import { createTestDatabase, type TestDatabase } from "../../../tests/support/database";
import { createBuilder } from "../../../tests/support/fixtures";
import { deriveKey, seal } from "../../secrets/box";
import { ModelNotConfiguredError } from "./config";
import { resolveRunModels, type ResolveOptions } from "./resolve";

let test: TestDatabase;
const db = () => test.database.db;
const sealingKey = deriveKey({ secretsKey: "r".repeat(40), sessionSecret: () => "unused" });
const options: ResolveOptions = {
  env: { AGENT_MODEL: "openai/gpt-4.1", OPENAI_API_KEY: "sk-server" },
  sealingKey: () => sealingKey,
  allowPrivate: true,
};

beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(() => test?.drop());

async function keyFor(userId: string, apiKey: string, models = ["m1", "m2"], baseUrl = "http://127.0.0.1:1/v1") {
  const id = randomUUID();
  await db()
    .insert(modelKeys)
    .values({
      id,
      userId,
      provider: "openai-compatible",
      label: "Mine",
      baseUrl,
      models,
      sealedKey: seal(apiKey, sealingKey, id),
      keyHint: apiKey.slice(-4),
    });
  return id;
}

async function runWith(userId: string, projectId: string, values: Partial<typeof runs.$inferInsert>) {
  const [run] = await db()
    .insert(runs)
    .values({ userId, projectId, prompt: "p", maxIterations: 5, model: "openai/gpt-4.1", ...values })
    .returning();
  return run!;
}

describe("resolveRunModels", () => {
  it("uses the server's key for a server spec, and the builder's opened key for a keyed model and its fallback", async () => {
    const { user, project } = await createBuilder(db());
    const server = await runWith(user.id, project.id, {});
    expect(await resolveRunModels(db(), server.id, options)).toEqual({
      config: { provider: "openai", model: "gpt-4.1", apiKey: "sk-server", label: "openai/gpt-4.1" },
    });

    const keyId = await keyFor(user.id, "sk-builder-0123456789");
    const keyed = await runWith(user.id, project.id, {
      model: "openai-compatible/m1",
      modelKeyId: keyId,
      fallbackModel: "openai/gpt-4.1",
    });
    const resolved = await resolveRunModels(db(), keyed.id, options);
    expect(resolved.config).toEqual({
      provider: "openai-compatible",
      model: "m1",
      label: "openai-compatible/m1",
      apiKey: "sk-builder-0123456789",
      baseUrl: "http://127.0.0.1:1/v1",
    });
    expect(resolved.fallback).toMatchObject({ provider: "openai", apiKey: "sk-server" });
  });

  it("refuses a removed key, another builder's key, a model the key does not list, an unreadable key and a private URL", async () => {
    const { user, project } = await createBuilder(db());
    const other = await createBuilder(db());
    const apiKey = "sk-secret-abcdefghijkl";
    const keyId = await keyFor(user.id, apiKey);
    const othersKey = await keyFor(other.user.id, "sk-other-abcdefghijkl");
    const cases: [Partial<typeof runs.$inferInsert>, RegExp][] = [
      [{ model: "openai-compatible/m1", modelKeyId: randomUUID() }, /API key for openai-compatible\/m1 was removed/],
      [{ model: "openai-compatible/m1", modelKeyId: othersKey }, /was removed/],
      [{ model: "openai-compatible/m9", modelKeyId: keyId }, /not for openai-compatible\/m9/],
      [{ model: "openai/m1", modelKeyId: keyId }, /not for openai\/m1/],
      [{ model: "openai/gpt-4.1", fallbackModel: "openai-compatible/m1", fallbackKeyId: othersKey }, /was removed/],
    ];
    for (const [values, message] of cases) {
      const run = await runWith(user.id, project.id, values);
      const error = await resolveRunModels(db(), run.id, options).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ModelNotConfiguredError);
      expect((error as Error).message).toMatch(message);
    }

    const run = await runWith(user.id, project.id, { model: "openai-compatible/m1", modelKeyId: keyId });
    const otherSecret = deriveKey({ secretsKey: "z".repeat(40), sessionSecret: () => "" });
    const unreadable = await resolveRunModels(db(), run.id, { ...options, sealingKey: () => otherSecret }).catch(
      (e: unknown) => e as Error,
    );
    expect(unreadable).toBeInstanceOf(ModelNotConfiguredError);
    expect((unreadable as Error).message).toMatch(/“Mine” could not be read.*add it again/);
    expect((unreadable as Error).message).not.toContain(apiKey);

    const refused = await resolveRunModels(db(), run.id, { ...options, allowPrivate: false }).catch(
      (e: unknown) => e as Error,
    );
    expect((refused as Error).message).toMatch(/loopback.*MODEL_KEYS_ALLOW_PRIVATE=1/);

    // The run's row is read once (its choice never changes); its key is looked up at every step, so a key removed
    // during a run ends it at the next one.
    const mine = await keyFor(user.id, "sk-mine-abcdefghijkl");
    const cached = await runWith(user.id, project.id, { model: "openai-compatible/m2", modelKeyId: mine });
    expect((await resolveRunModels(db(), cached.id, options)).config).toMatchObject({ model: "m2" });
    await db().update(runs).set({ model: "openai-compatible/m1" }).where(eq(runs.id, cached.id));
    expect((await resolveRunModels(db(), cached.id, options)).config).toMatchObject({ model: "m2" });
    await db().delete(modelKeys).where(eq(modelKeys.id, mine));
    await expect(resolveRunModels(db(), cached.id, options)).rejects.toThrow(/was removed/);

    // Deleting the builder deletes their keys with them (and a run of theirs can no longer name one).
    await db().delete(users).where(eq(users.id, other.user.id));
    expect(await db().select().from(modelKeys).where(eq(modelKeys.id, othersKey))).toEqual([]);
  });
});
