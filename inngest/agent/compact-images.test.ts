/**
 * Compaction and images (decision 036): the summary model is sent the prompt's text with the line naming its
 * images, never the images themselves, and once that prompt is summarized its images are not sent again.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnv } from "../../app/env.server";
import { saveImages } from "../../app/models/prompt-images.server";
import { runs } from "../../db/schema";
import { SUMMARY_REQUEST_PHRASE } from "../../model-replay/answer";
import { startReplayServer } from "../../model-replay/server";
import { closeEgressProxies } from "../../sandbox";
import { createTestDatabase, type TestDatabase } from "../../tests/support/database";
import { createBuilder } from "../../tests/support/fixtures";
import { pngImage, sha256 } from "../../tests/support/images";
import { compact } from "./compact";
import { createAgentContext, type AgentContext } from "./context";
import { saveEntry } from "./entries";
import { startAgentRun, think } from "./steps";

const DONE_STEPS = 15;

let t: TestDatabase;
let replay: Awaited<ReturnType<typeof startReplayServer>>;
let agent: AgentContext;
let dataDir: string;

beforeAll(async () => {
  t = await createTestDatabase();
  replay = await startReplayServer({
    scripts: [
      {
        name: "long-images",
        turns: [
          ...Array.from({ length: DONE_STEPS }, () => ({ reply: { tool: "list_files" } })),
          { reply: { tool: "read_file", path: "notes.txt" } },
        ],
      },
    ],
    port: 0,
  });
  dataDir = mkdtempSync(path.join(os.tmpdir(), "dyno-compact-images-"));
  agent = createAgentContext(
    parseEnv({ DYNO_DATA_DIR: dataDir, AGENT_BASE_URL: replay.url, BAML_LOG: "error", AGENT_CONTEXT_TOKENS: "6000" }),
    t.database,
  );
});

afterAll(async () => {
  await closeEgressProxies();
  await replay?.close();
  await t?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("compaction with images", () => {
  it("summarizes a prompt's images by name and sends them no more", async () => {
    const { db } = t.database;
    const { user, project } = await createBuilder(db);
    const [row] = await db
      .insert(runs)
      .values({
        userId: user.id,
        projectId: project.id,
        prompt: "Like this",
        model: "openai-compatible/long-images",
        maxIterations: 50,
      })
      .returning();
    const png = pngImage(8, 8);
    const image = {
      id: randomUUID(),
      name: "mockup.png",
      mediaType: "image/png" as const,
      bytes: png,
      size: png.length,
      sha256: sha256(png),
    };
    await saveImages(db, { projectId: project.id, runId: row!.id, messageId: null }, [image]);
    const base = { runId: row!.id, projectId: project.id };
    const { bytes: _bytes, ...ref } = image;
    await saveEntry(db, { ...base, iteration: 0, kind: "user", payload: { prompt: "Like this", images: [ref] } });
    for (let i = 1; i <= DONE_STEPS; i++) {
      await saveEntry(db, {
        ...base,
        iteration: i,
        kind: "action",
        payload: { action: { tool: "list_files", path: `d${i}` } },
      });
      const content = Array.from({ length: 120 }, (_, n) => `file-${i}-${n}.txt`).join("\n");
      await saveEntry(db, {
        ...base,
        iteration: i,
        kind: "result",
        payload: { tool: "list_files", ok: true, content },
      });
    }
    const run = await startAgentRun(agent, row!.id);
    const iteration = DONE_STEPS + 1;

    const thought = await think(agent, run, iteration);
    expect(thought).toMatchObject({ next: "compact" });
    expect(await compact(agent, run, iteration, (thought as { through: number }).through)).toEqual({ next: "think" });
    const summaryRequest = replay.requestLog.at(-1)!;
    expect(summaryRequest.turn).toBe("summary");
    expect(summaryRequest.images).toEqual([]);
    expect(replay.recentPrompts.at(-1)).toContain(SUMMARY_REQUEST_PHRASE);
    expect(replay.recentPrompts.at(-1)).toContain("[The builder attached an image: mockup.png (image/png, 1 KiB)]");

    expect(await think(agent, run, iteration, { compacted: true })).toEqual({ next: "act" });
    expect(replay.requestLog.at(-1)!.images).toEqual([]);
  });
});
