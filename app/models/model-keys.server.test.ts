/**
 * A project's model choice against the server's offered models and the
 * builder's keys (decision 034), on a real database: what the picker lists,
 * what may be saved, and what a prompt records.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { modelKeys, projects } from "../../db/schema";
import { ModelNotConfiguredError } from "../../inngest/agent/model/config";
import { createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder } from "../../tests/support/fixtures";
import {
  addModelKey,
  loadModelPicker,
  ModelKeyInputError,
  projectModelProblem,
  promptModelChoice,
  setProjectModel,
} from "./model-keys.server";

vi.hoisted(() => {
  Object.assign(process.env, {
    AGENT_MODEL: "openai/gpt-4.1",
    AGENT_MODELS: "openai/gpt-4.1-mini, anthropic/claude-sonnet-4-5",
    OPENAI_API_KEY: "sk-server",
    ANTHROPIC_API_KEY: "",
    SESSION_SECRET: "m".repeat(40),
    MODEL_KEYS_ALLOW_PRIVATE: "1",
  });
});

let test: TestDatabase;
const db = () => test.database.db;

beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(() => test?.drop());

async function projectOf(id: string) {
  const [row] = await db().select().from(projects).where(eq(projects.id, id));
  return row!;
}

describe("a project's model", () => {
  it("defaults to AGENT_MODEL, offers AGENT_MODELS, and refuses a server model missing its key", async () => {
    const { user, project } = await createBuilder(db());
    expect(await promptModelChoice(db(), { userId: user.id, projectId: project.id })).toEqual({
      model: "openai/gpt-4.1",
      modelKeyId: null,
      fallbackModel: null,
      fallbackKeyId: null,
    });
    const picker = await loadModelPicker(db(), user.id, project);
    expect(picker.server.map((o) => [o.value, o.problem === null])).toEqual([
      ["server:openai/gpt-4.1", true],
      ["server:openai/gpt-4.1-mini", true],
      ["server:anthropic/claude-sonnet-4-5", false],
    ]);
    expect(picker.summary).toBe("openai/gpt-4.1 (server default)");

    await expect(
      setProjectModel(db(), user.id, project, { model: "server:anthropic/claude-sonnet-4-5", fallback: "" }),
    ).rejects.toThrow(/ANTHROPIC_API_KEY/);
    await expect(setProjectModel(db(), user.id, project, { model: "server:openai/o3", fallback: "" })).rejects.toThrow(
      ModelKeyInputError,
    );

    await setProjectModel(db(), user.id, project, { model: "", fallback: "server:openai/gpt-4.1-mini" });
    expect(await promptModelChoice(db(), { userId: user.id, projectId: project.id })).toMatchObject({
      model: "openai/gpt-4.1",
      fallbackModel: "openai/gpt-4.1-mini",
      fallbackKeyId: null,
    });
    expect((await loadModelPicker(db(), user.id, await projectOf(project.id))).summary).toBe(
      "openai/gpt-4.1 (server default), fallback openai/gpt-4.1-mini",
    );
  });

  it("uses a key's model with a server fallback, and a prompt given a spec (the demo, Retry) overrides the project", async () => {
    const { user, project } = await createBuilder(db());
    const key = await addModelKey(db(), user.id, {
      provider: "openai-compatible",
      label: "Local",
      baseUrl: "http://127.0.0.1:11434/v1/",
      apiKey: "",
      models: "llama3.1:8b qwen2.5-coder",
    });
    // A keyless OpenAI-compatible server: no sealed key, no hint.
    const [row] = await db().select().from(modelKeys).where(eq(modelKeys.id, key.id));
    expect(row).toMatchObject({ sealedKey: null, keyHint: null, baseUrl: "http://127.0.0.1:11434/v1" });
    expect(key.hint).toBeNull();

    await setProjectModel(db(), user.id, project, {
      model: `key:${key.id}:llama3.1:8b`,
      fallback: "server:openai/gpt-4.1-mini",
    });
    expect(await promptModelChoice(db(), { userId: user.id, projectId: project.id })).toEqual({
      model: "openai-compatible/llama3.1:8b",
      modelKeyId: key.id,
      fallbackModel: "openai/gpt-4.1-mini",
      fallbackKeyId: null,
    });
    const picker = await loadModelPicker(db(), user.id, await projectOf(project.id));
    expect(picker.model).toBe(`key:${key.id}:llama3.1:8b`);
    expect(picker.summary).toBe("openai-compatible/llama3.1:8b with “Local”, fallback openai/gpt-4.1-mini");
    expect(
      await promptModelChoice(db(), { userId: user.id, projectId: project.id, requested: "replay/todo-page" }),
    ).toEqual({ model: "replay/todo-page", modelKeyId: null, fallbackModel: null, fallbackKeyId: null });

    // Another builder's project cannot be given this key, and a prompt of theirs naming it is refused.
    const other = await createBuilder(db());
    await expect(
      setProjectModel(db(), other.user.id, other.project, { model: `key:${key.id}:llama3.1:8b`, fallback: "" }),
    ).rejects.toMatchObject({ status: 404 });
    await expect(
      promptModelChoice(db(), {
        userId: other.user.id,
        projectId: other.project.id,
        requested: {
          model: "openai-compatible/llama3.1:8b",
          modelKeyId: key.id,
          fallbackModel: null,
          fallbackKeyId: null,
        },
      }),
    ).rejects.toThrow(ModelNotConfiguredError);

    // Its key removed, the project says so instead of running on the server's key.
    await db().delete(modelKeys).where(eq(modelKeys.id, key.id));
    expect(await projectModelProblem(db(), await projectOf(project.id))).toMatch(
      /API key for openai-compatible\/llama3.1:8b was removed/,
    );
  });
});
