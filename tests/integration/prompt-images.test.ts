/**
 * Images in prompts (decision 036) through the real engine, the app's HTTP actions, Postgres (or PGlite), the real
 * BAML client and the replay model: a multipart prompt's PNG reaches the model as an image content part of the right
 * user turn; bad images are refused with a clear message, the text given back and nothing written; the image is
 * served to its owner only; a model without vision is refused, and one that comes later reads a note instead.
 */
import { randomUUID } from "node:crypto";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentEntries, messages, promptImages, runs, steerMessages, users } from "../../db/schema";
import { signUp } from "../support/accounts";
import { pngImage, sha256, SVG_IMAGE } from "../support/images";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

/** The model prompts sent over HTTP use (AGENT_MODEL): one AGENT_VISION_MODELS names. */
const VISION_SCRIPT = "images-vision";
const MAX_BYTES = 64 * 1024;
/** A model the builder can pick for a project that AGENT_VISION_MODELS does not name. */
const PLAIN_SCRIPT = "images-plain";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    env: {
      AGENT_MODEL: `openai-compatible/${VISION_SCRIPT}`,
      AGENT_VISION_MODELS: `openai-compatible/${VISION_SCRIPT}`,
      // A second server model a project may pick (decision 034), one that does not read images.
      AGENT_MODELS: `openai-compatible/${PLAIN_SCRIPT}`,
      PROMPT_IMAGE_MAX_BYTES: "64k",
      PROMPT_IMAGE_MAX_COUNT: "2",
      PROMPT_IMAGE_RECENT_TURNS: "2",
    },
  });
  console.log(`[prompt-images] ${stack.database.driver} database, engine ${stack.engine.url}, app ${stack.app.url}`);
});

afterAll(async () => {
  await stack?.stop();
});

function script(turns: Turn[]) {
  stack.replay.addScript({ name: VISION_SCRIPT, turns });
}

interface Builder {
  cookie: string;
  userId: string;
}

async function builder(): Promise<Builder> {
  const email = `images-${randomUUID()}@example.test`;
  const cookie = await signUp(stack.app.url, email, "correct horse battery");
  const [user] = await stack.database.db.select().from(users).where(eq(users.email, email));
  return { cookie, userId: user!.id };
}

async function createProject(who: Builder): Promise<string> {
  const response = await fetch(`${stack.app.url}/projects`, {
    method: "POST",
    body: new URLSearchParams({ intent: "create", title: "With images" }),
    redirect: "manual",
    headers: { Cookie: who.cookie },
  });
  expect(response.status).toBe(302);
  return /([0-9a-f-]{36})$/.exec(response.headers.get("Location") ?? "")![1]!;
}

type File = { name: string; bytes: Uint8Array; type?: string };

/** Posts the prompt box as a browser does with files chosen: multipart, the text first, then the images. */
async function sendPrompt(who: Builder, projectId: string, prompt: string, files: File[]) {
  const form = new FormData();
  form.append("prompt", prompt);
  form.append("mode", "build");
  for (const file of files)
    form.append("images", new Blob([new Uint8Array(file.bytes)], { type: file.type ?? "image/png" }), file.name);
  form.append("intent", "prompt");
  const response = await fetch(`${stack.app.url}/projects/${projectId}.data`, {
    method: "POST",
    body: form,
    redirect: "manual",
    headers: { Cookie: who.cookie },
  });
  return { status: response.status, text: await response.text() };
}

const runsOf = (projectId: string) =>
  stack.database.db.select().from(runs).where(eq(runs.projectId, projectId)).orderBy(asc(runs.createdAt));
const imagesOf = (projectId: string) =>
  stack.database.db
    .select()
    .from(promptImages)
    .where(eq(promptImages.projectId, projectId))
    .orderBy(asc(promptImages.createdAt));

/** Nothing of a refused prompt reached the database. */
async function expectNothingWritten(projectId: string) {
  expect(await runsOf(projectId)).toEqual([]);
  expect(await imagesOf(projectId)).toEqual([]);
  expect(await stack.database.db.select().from(messages).where(eq(messages.projectId, projectId))).toEqual([]);
  expect(await stack.database.db.select().from(agentEntries).where(eq(agentEntries.projectId, projectId))).toEqual([]);
}

describe("images in prompts", () => {
  it("sends a PNG attached to a prompt to the model as an image part of that user turn", async () => {
    const me = await builder();
    const id = await createProject(me);
    script([turn.write("index.html", "<h1>Like the mockup</h1>"), turn.reply("Built from your mockup.")]);
    const png = pngImage(16, 9, [10, 120, 200]);
    const marker = `Build a page like this mockup ${randomUUID()}`;
    const before = stack.replay.requestLog.length;

    const sent = await sendPrompt(me, id, marker, [{ name: "mockup.png", bytes: png }]);
    expect(sent.status).toBe(200);
    const [run] = await runsOf(id);
    expect((await waitForRunToFinish(stack.database, run!)).type).toBe("complete");

    // Every request of the run carried the image, once, in the user turn with the prompt (after the system message).
    const requests = stack.replay.requestLog.slice(before).filter((r) => typeof r.turn === "number");
    expect(requests.length).toBe(2);
    for (const request of requests) {
      expect(request.images).toEqual([
        {
          message: 1,
          role: "user",
          text: expect.stringContaining(marker),
          mediaType: "image/png",
          bytes: png.byteLength,
          sha256: sha256(png),
        },
      ]);
      expect(request.images[0]!.text).toContain("[The builder attached an image: mockup.png (image/png, 1 KiB)]");
    }

    // Stored once, with the prompt's message and run.
    const [stored] = await imagesOf(id);
    const [message] = await stack.database.db.select().from(messages).where(eq(messages.runId, run!.id));
    expect(stored).toMatchObject({ runId: run!.id, messageId: message!.id, name: "mockup.png", size: png.byteLength });
    expect(stored!.sha256).toBe(sha256(png));
    expect(Buffer.from(stored!.bytes).equals(png)).toBe(true);

    // The transcript shows it, from the owner-only route, with its type and no sniffing.
    const page = await (await fetch(`${stack.app.url}/projects/${id}`, { headers: { Cookie: me.cookie } })).text();
    expect(page).toContain(`src="/projects/${id}/images/${stored!.id}"`);
    expect(page).toContain('alt="Attached image mockup.png"');
    const image = await fetch(`${stack.app.url}/projects/${id}/images/${stored!.id}`, {
      headers: { Cookie: me.cookie },
    });
    expect(image.status).toBe(200);
    expect(image.headers.get("content-type")).toBe("image/png");
    expect(image.headers.get("x-content-type-options")).toBe("nosniff");
    expect(image.headers.get("content-security-policy")).toContain("sandbox");
    expect(Buffer.from(await image.arrayBuffer()).equals(png)).toBe(true);

    // Nobody else gets it: another builder, a wrong project, no session.
    const other = await builder();
    const otherProject = await createProject(other);
    for (const [path, cookie] of [
      [`/projects/${id}/images/${stored!.id}`, other.cookie],
      [`/projects/${otherProject}/images/${stored!.id}`, other.cookie],
      [`/projects/${id}/images/not-a-uuid`, me.cookie],
      [`/projects/${id}/images/${randomUUID()}`, me.cookie],
    ] as const) {
      const refused = await fetch(`${stack.app.url}${path}`, { headers: { Cookie: cookie } });
      expect(refused.status, path).toBe(404);
      expect(await refused.text()).not.toContain("PNG");
    }
    const anonymous = await fetch(`${stack.app.url}/projects/${id}/images/${stored!.id}`, { redirect: "manual" });
    expect(anonymous.status).toBe(302);
  });

  it("refuses an oversized image, a text file called .png, an SVG and one image too many, keeping the text", async () => {
    const me = await builder();
    const id = await createProject(me);
    const cases: Array<[File[], RegExp]> = [
      [
        [{ name: "huge.png", bytes: pngImage(4, 3, [0, 0, 0], MAX_BYTES + 100) }],
        /“huge\.png” is too large \(64 KiB\): an image may be at most 64 KiB\./,
      ],
      [
        [{ name: "notes.png", bytes: Buffer.from("these are my notes, not a picture") }],
        /“notes\.png” is not a PNG, JPEG, WebP or GIF image \(judged by its content, not its name\)\./,
      ],
      [[{ name: "logo.svg", bytes: SVG_IMAGE, type: "image/svg+xml" }], /“logo\.svg” is not a PNG, JPEG, WebP or GIF/],
      [
        [1, 2, 3].map((i) => ({ name: `shot-${i}.png`, bytes: pngImage(i, i) })),
        /At most 2 images can go with one prompt\./,
      ],
    ];
    for (const [files, message] of cases) {
      const text = `keep this text ${randomUUID()}`;
      const refused = await sendPrompt(me, id, text, files);
      expect(refused.status).toBe(400);
      expect(refused.text).toMatch(message);
      // The text comes back, so the box still holds it.
      expect(refused.text).toContain(text);
    }
    await expectNothingWritten(id);
  });

  it("refuses a body past the images' total limit before reading it", async () => {
    const me = await builder();
    const id = await createProject(me);
    const form = new FormData();
    form.append("prompt", "too much");
    form.append("images", new Blob([new Uint8Array(2 * MAX_BYTES + 300 * 1024)]), "big.png");
    const response = await fetch(`${stack.app.url}/projects/${id}`, {
      method: "POST",
      body: form,
      headers: { Cookie: me.cookie },
    });
    expect(response.status).toBe(413);
    expect(await response.text()).toBe("Request body too large (at most 384 KiB)");
    await expectNothingWritten(id);
  });

  it("tells a builder whose project uses a model without vision that it cannot read images, keeping the text", async () => {
    const me = await builder();
    const id = await createProject(me);
    const post = (fields: Record<string, string>) =>
      fetch(`${stack.app.url}/projects/${id}.data`, {
        method: "POST",
        body: new URLSearchParams(fields),
        headers: { Cookie: me.cookie },
      });
    expect((await post({ intent: "model-set", model: `server:openai-compatible/${PLAIN_SCRIPT}` })).status).toBe(200);
    const refused = await sendPrompt(me, id, "what does this show?", [{ name: "shot.png", bytes: pngImage() }]);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain(
      `The model openai-compatible/${PLAIN_SCRIPT} does not read images, so this prompt was not sent.`,
    );
    expect(refused.text).toContain("what does this show?");
    await expectNothingWritten(id);

    // A fallback may answer any step, so it must read images too.
    const picked = await post({
      intent: "model-set",
      model: `server:openai-compatible/${VISION_SCRIPT}`,
      fallback: `server:openai-compatible/${PLAIN_SCRIPT}`,
    });
    expect(picked.status).toBe(200);
    const withFallback = await sendPrompt(me, id, "and this?", [{ name: "shot.png", bytes: pngImage() }]);
    expect(withFallback.status).toBe(400);
    expect(withFallback.text).toContain(
      `The fallback model openai-compatible/${PLAIN_SCRIPT} does not read images, so this prompt was not sent.`,
    );
    await expectNothingWritten(id);
  });

  it("refuses images for a model without vision, naming it, and a later run of such a model reads a note", async () => {
    const { startRun, VisionUnsupportedError } = await import("../../app/models/runs.server");
    const me = await builder();
    const id = await createProject(me);
    const png = pngImage(5, 5);
    const image = {
      name: "shot.png",
      mediaType: "image/png" as const,
      bytes: png,
      size: png.byteLength,
      sha256: sha256(png),
    };
    const plain = `test-plain-${randomUUID().slice(0, 8)}`;
    stack.replay.addScript({ name: plain, turns: [turn.reply("I can only read text."), turn.reply("Text only.")] });

    const refused = await startRun(stack.database.db, {
      userId: me.userId,
      projectId: id,
      input: { prompt: "what is in this picture?" },
      model: `openai-compatible/${plain}`,
      images: [image],
    }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(VisionUnsupportedError);
    expect((refused as Error).message).toBe(
      `The model openai-compatible/${plain} does not read images, so this prompt was not sent. Send it without the ` +
        "images, or use a model that reads them (AGENT_VISION_MODELS lists which do).",
    );
    await expectNothingWritten(id);

    // The image went with a vision model's prompt; the next run's model has no vision: it is told, not failed.
    script([turn.reply("Seen it.")]);
    expect((await sendPrompt(me, id, "look at this", [{ name: "shot.png", bytes: png }])).status).toBe(200);
    const [first] = await runsOf(id);
    expect((await waitForRunToFinish(stack.database, first!)).type).toBe("complete");
    const before = stack.replay.requestLog.length;
    const second = await startRun(stack.database.db, {
      userId: me.userId,
      projectId: id,
      input: { prompt: "and now?" },
      model: `openai-compatible/${plain}`,
    });
    expect((await waitForRunToFinish(stack.database, second)).type).toBe("complete");
    const [request] = stack.replay.requestLog.slice(before).filter((r) => r.model === plain);
    expect(request!.images).toEqual([]);
    const prompt = stack.replay.recentPrompts.findLast((p) => p.includes("and now?"))!;
    expect(prompt).toContain(`[image omitted: model openai-compatible/${plain} has no vision]`);
    expect(prompt).toContain("[The builder attached an image: shot.png (image/png, 1 KiB)]");
  });

  it("sends a stopped run's images again when it is retried", async () => {
    const me = await builder();
    const id = await createProject(me);
    script([turn.run("sleep 5"), turn.reply("Done.")]);
    const png = pngImage(7, 7, [1, 2, 3]);
    expect((await sendPrompt(me, id, "retry me", [{ name: "again.png", bytes: png }])).status).toBe(200);
    const [run] = await runsOf(id);
    await waitForRunEvent(stack.database, {
      projectId: id,
      runId: run!.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 1,
    });
    const post = (fields: Record<string, string>) =>
      fetch(`${stack.app.url}/projects/${id}.data`, {
        method: "POST",
        body: new URLSearchParams(fields),
        headers: { Cookie: me.cookie },
      });
    expect((await post({ intent: "stop", runId: run!.id })).status).toBe(200);
    expect((await waitForRunToFinish(stack.database, run!)).type).toBe("stopped");

    // The stopped run's action counts as the script's first turn.
    script([turn.reply("(not asked)"), turn.reply("Retried with the image.")]);
    const before = stack.replay.requestLog.length;
    expect((await post({ intent: "retry", runId: run!.id })).status).toBe(200);
    const [, retried] = await runsOf(id);
    expect((await waitForRunToFinish(stack.database, retried!)).type).toBe("complete");
    const stored = (await imagesOf(id)).filter((image) => image.runId === retried!.id);
    expect(stored.map((image) => [image.name, image.sha256])).toEqual([["again.png", sha256(png)]]);
    // Both prompts are in the conversation, each with its image (the two newest prompts with images are sent).
    const [request] = stack.replay.requestLog.slice(before).filter((r) => typeof r.turn === "number");
    expect(request!.images.map((image) => [image.sha256, image.role])).toEqual([
      [sha256(png), "user"],
      [sha256(png), "user"],
    ]);
    expect(request!.images[0]!.message).toBeLessThan(request!.images[1]!.message);
  });

  it("refuses images sent while a run works (steering carries text only) and writes nothing for them", async () => {
    const me = await builder();
    const id = await createProject(me);
    script([turn.run("sleep 3"), turn.reply("Done.")]);
    expect((await sendPrompt(me, id, "build it", [])).status).toBe(200);
    const [run] = await runsOf(id);
    await waitForRunEvent(stack.database, {
      projectId: id,
      runId: run!.id,
      until: (row) => row.type === "tool_call" && row.data.iteration === 1,
    });
    const refused = await sendPrompt(me, id, "like this picture", [{ name: "shot.png", bytes: pngImage() }]);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("Images cannot be added to a run that is working");
    expect(refused.text).toContain("like this picture");
    expect(await stack.database.db.select().from(steerMessages).where(eq(steerMessages.projectId, id))).toEqual([]);
    expect(await imagesOf(id)).toEqual([]);
    // Text alone still steers, as a multipart post.
    const steered = await sendPrompt(me, id, "and make it blue", []);
    expect(steered.status).toBe(200);
    expect(steered.text).toContain("Queued: the agent reads it at its next step.");
    expect((await waitForRunToFinish(stack.database, run!)).type).toBe("complete");
    expect(await runsOf(id)).toHaveLength(1);
  });
});
