/**
 * Which models read images, and the images a question to the model carries (decision 036). The conversation
 * (conversation.ts) names each prompt's images; here, just before the model is asked, the images of the newest
 * prompts are loaded from Postgres and handed to BAML as images. A model without vision gets a line of text in
 * their place, never a failed run; older prompts' images are named, not sent again.
 */
import { createRequire } from "node:module";
import { inArray } from "drizzle-orm";
import { env } from "../../../app/env.server";
import type { ConversationTurn as BamlTurn } from "../../../baml_client";
import type { Db } from "../../../db/client";
import { promptImages } from "../../../db/schema";
import type { ConversationTurn } from "../conversation";

// Required, not imported: the package's CommonJS exports name Image through a getter that ESM's named-export
// detection skips, so Vite's SSR loader finds neither `Image` nor a default export (it is marked __esModule).
const baml = createRequire(import.meta.url)("@boundaryml/baml") as typeof import("@boundaryml/baml");

/** What the conversation keeps of an image (the agent_entries payload of its prompt): never its bytes. */
export interface PromptImageRef {
  id: string;
  name: string;
  mediaType: string;
  size: number;
  sha256: string;
}

function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`, "i");
}

/** Whether a model (its spec, provider/model) reads images: AGENT_VISION_MODELS, comma-separated patterns with *. */
export function supportsVision(modelLabel: string, patterns: string = env().AGENT_VISION_MODELS): boolean {
  return patterns
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .some((pattern) => patternToRegExp(pattern).test(modelLabel));
}

/** A prompt with images for a model that cannot read them: refused before anything is written. */
export class VisionUnsupportedError extends Error {
  readonly status = 400;
  constructor(
    readonly model: string,
    /** The project's fallback model (it may answer any step, so it must read images too). */
    fallback = false,
  ) {
    super(
      `The ${fallback ? "fallback model" : "model"} ${model} does not read images, so this prompt was not sent. ` +
        `Send it without the images, or use a model that reads them (AGENT_VISION_MODELS lists which do).`,
    );
  }
}

/** What the model reads where an image is not sent. */
export function omittedNote(count: number, reason: "no-vision" | "older", model: string): string {
  const what = count === 1 ? "image" : `${count} images`;
  return reason === "no-vision"
    ? `[${what} omitted: model ${model} has no vision]`
    : `[${what} of this older prompt not sent again; ask the builder if you need ${count === 1 ? "it" : "them"}]`;
}

export interface AttachOptions {
  /** The model asked (its spec); only one AGENT_VISION_MODELS names gets images. */
  model: string;
  /** The newest prompts whose images are sent (PROMPT_IMAGE_RECENT_TURNS). */
  recentTurns?: number;
  visionPatterns?: string;
}

/**
 * The turns as BAML takes them: the images of the newest `recentTurns` prompts with images loaded from Postgres
 * (a deleted one is named as missing), every other image named in a line instead. Deterministic on the turns and
 * the settings, so a retried think asks the same question.
 */
export async function attachImages(
  db: Db,
  turns: readonly ConversationTurn[],
  { model, recentTurns = env().PROMPT_IMAGE_RECENT_TURNS, visionPatterns }: AttachOptions,
): Promise<BamlTurn[]> {
  const vision = supportsVision(model, visionPatterns);
  const withImages = turns.flatMap((turn, index) => (turn.images?.length ? [index] : []));
  const sent = new Set(vision ? withImages.slice(-recentTurns) : []);
  const ids = [...sent].flatMap((index) => turns[index]!.images!.map((image) => image.id));
  const rows = ids.length
    ? await db
        .select({ id: promptImages.id, mediaType: promptImages.mediaType, bytes: promptImages.bytes })
        .from(promptImages)
        .where(inArray(promptImages.id, ids))
    : [];
  const byId = new Map(rows.map((row) => [row.id, row]));
  return turns.map((turn, index) => {
    const images = turn.images ?? [];
    if (images.length === 0) return { role: turn.role, content: turn.content };
    if (!sent.has(index)) {
      const note = omittedNote(images.length, vision ? "older" : "no-vision", model);
      return { role: turn.role, content: `${turn.content}\n${note}` };
    }
    const loaded = images.flatMap((image) => {
      const row = byId.get(image.id);
      return row ? [baml.Image.fromBase64(row.mediaType, Buffer.from(row.bytes).toString("base64"))] : [];
    });
    const missing = images.length - loaded.length;
    const content = missing ? `${turn.content}\n[${missing} image(s) no longer stored]` : turn.content;
    return { role: turn.role, content, images: loaded };
  });
}
