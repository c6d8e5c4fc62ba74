import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveImages } from "../../../app/models/prompt-images.server";
import type { AgentEntry } from "../../../db/schema";
import { createTestDatabase, type TestDatabase } from "../../../tests/support/database";
import { createBuilder } from "../../../tests/support/fixtures";
import { pngImage, sha256 } from "../../../tests/support/images";
import { renderConversation } from "../conversation";
import { attachImages, omittedNote, supportsVision, type PromptImageRef } from "./vision";

const DEFAULT = "openai/gpt-4o*,openai/gpt-4.1*,anthropic/claude-3*,anthropic/claude-sonnet-4*,replay/*";

describe("supportsVision", () => {
  it("matches model specs against the patterns, * as a wildcard", () => {
    expect(supportsVision("openai/gpt-4o-mini", DEFAULT)).toBe(true);
    expect(supportsVision("anthropic/claude-sonnet-4-5", DEFAULT)).toBe(true);
    expect(supportsVision("replay/todo", DEFAULT)).toBe(true);
    expect(supportsVision("openai-compatible/llama3", DEFAULT)).toBe(false);
    expect(supportsVision("openai/gpt-3.5-turbo", DEFAULT)).toBe(false);
    // Dots are literal, not "any character".
    expect(supportsVision("openai/gpt-4x1", "openai/gpt-4.1")).toBe(false);
    expect(supportsVision("anything", "")).toBe(false);
  });

  it("covers current OpenAI and Claude models by default", async () => {
    const { parseEnv } = await import("../../../app/env.server");
    const patterns = parseEnv({}).AGENT_VISION_MODELS;
    for (const model of [
      "openai/gpt-4.1",
      "openai/gpt-5-mini",
      "anthropic/claude-opus-4-1",
      "anthropic/claude-3-5-haiku-latest",
      "replay/todo",
    ])
      expect(supportsVision(model, patterns), model).toBe(true);
  });
});

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

let nextId = 1;
function entry(kind: AgentEntry["kind"], payload: Record<string, unknown>): AgentEntry {
  return {
    id: nextId++,
    runId: "r",
    projectId: "p",
    iteration: 0,
    kind,
    payload,
    createdAt: new Date(),
  } as AgentEntry;
}

async function storedImages(projectId: string, count: number) {
  const uploads = Array.from({ length: count }, (_, i) => {
    const bytes = pngImage(2 + i, 2);
    return {
      id: randomUUID(),
      name: `shot-${i}.png`,
      mediaType: "image/png" as const,
      bytes,
      size: bytes.length,
      sha256: sha256(bytes),
    };
  });
  await saveImages(t.database.db, { projectId, runId: null, messageId: null }, uploads);
  const refs: PromptImageRef[] = uploads.map(({ id, name, mediaType, size, sha256 }) => ({
    id,
    name,
    mediaType,
    size,
    sha256,
  }));
  return { uploads, refs };
}

describe("images in the conversation", () => {
  it("names each prompt's images in its text and carries them by reference", () => {
    const images: PromptImageRef[] = [{ id: "i1", name: "mock.png", mediaType: "image/png", size: 2048, sha256: "x" }];
    const turns = renderConversation([entry("user", { prompt: "Like this", images })]);
    expect(turns).toEqual([
      { role: "user", content: "Like this\n\n[The builder attached an image: mock.png (image/png, 2 KiB)]", images },
    ]);
  });

  it("sends the images of the newest prompts only, and names the rest", async () => {
    const { project } = await createBuilder(t.database.db);
    const first = await storedImages(project.id, 1);
    const second = await storedImages(project.id, 2);
    const turns = renderConversation([
      entry("user", { prompt: "first", images: first.refs }),
      entry("reply", { message: "ok" }),
      entry("user", { prompt: "second", images: second.refs }),
    ]);
    const sent = await attachImages(t.database.db, turns, {
      model: "replay/x",
      recentTurns: 1,
      visionPatterns: "replay/*",
    });
    expect(sent[0]!.images).toBeUndefined();
    expect(sent[0]!.content).toContain(omittedNote(1, "older", "replay/x"));
    expect(sent[2]!.images).toHaveLength(2);
    expect(sent[2]!.content).not.toContain("omitted");
    // Two newest prompts: both sent.
    const both = await attachImages(t.database.db, turns, {
      model: "replay/x",
      recentTurns: 2,
      visionPatterns: "replay/*",
    });
    expect(both.map((turn) => turn.images?.length ?? 0)).toEqual([1, 0, 2]);
  });

  it("gives a model without vision a line instead of the image, never the image", async () => {
    const { project } = await createBuilder(t.database.db);
    const { refs } = await storedImages(project.id, 1);
    const turns = renderConversation([entry("user", { prompt: "see", images: refs })]);
    const sent = await attachImages(t.database.db, turns, {
      model: "openai-compatible/llama3",
      visionPatterns: "replay/*",
    });
    expect(sent).toEqual([
      {
        role: "user",
        content: expect.stringContaining("[image omitted: model openai-compatible/llama3 has no vision]"),
      },
    ]);
  });

  it("says so when a stored image is gone", async () => {
    const ref: PromptImageRef = { id: randomUUID(), name: "gone.png", mediaType: "image/png", size: 10, sha256: "x" };
    const turns = renderConversation([entry("user", { prompt: "see", images: [ref] })]);
    const [turn] = await attachImages(t.database.db, turns, { model: "replay/x", visionPatterns: "replay/*" });
    expect(turn!.images).toEqual([]);
    expect(turn!.content).toContain("[1 image(s) no longer stored]");
  });
});
