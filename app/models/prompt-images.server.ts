/**
 * Images attached to a prompt (decision 036): read from the chat form's multipart body with their limits enforced
 * while it streams in, checked by their bytes (not the name or the type the browser claims), stored in Postgres with
 * the prompt's message and served back to their owner only.
 */
import { createHash } from "node:crypto";
import { unstable_parseMultipartFormData, type UploadHandler } from "@remix-run/node";
import { and, asc, eq, inArray } from "drizzle-orm";
import type { Db } from "../../db/client";
import { messages, projects, promptImages } from "../../db/schema";
import { MULTIPART_TEXT_ALLOWANCE } from "../../server/body-limit";
import { env } from "../env.server";
import { humanSize } from "./prompt-images";

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

/** The field the prompt box's file input posts. */
export const IMAGE_FIELD = "images";

/** An image as the form sent it, checked: ready to store. */
export interface PromptImageUpload {
  name: string;
  mediaType: ImageType;
  bytes: Uint8Array;
  size: number;
  sha256: string;
}

export interface ImageLimits {
  maxBytes: number;
  maxCount: number;
}

export function imageLimits(): ImageLimits {
  return { maxBytes: env().PROMPT_IMAGE_MAX_BYTES, maxCount: env().PROMPT_IMAGE_MAX_COUNT };
}

/** An image the form may not carry; the prompt is refused with this message and nothing is written. */
export class ImageRefusedError extends Error {
  readonly status = 400;
}

const startsWith = (bytes: Uint8Array, prefix: readonly number[], at = 0) =>
  bytes.length >= at + prefix.length && prefix.every((byte, i) => bytes[at + i] === byte);
const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

/** The image type its first bytes say, or undefined for anything else (SVG, HTML, text renamed .png…). */
export function sniffImageType(bytes: Uint8Array): ImageType | undefined {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (startsWith(bytes, ascii("GIF87a")) || startsWith(bytes, ascii("GIF89a"))) return "image/gif";
  if (startsWith(bytes, ascii("RIFF")) && startsWith(bytes, ascii("WEBP"), 8)) return "image/webp";
  return undefined;
}

/** A file name fit to show: its base name, control characters dropped, at most 120 characters. */
export function cleanName(name: string): string {
  // eslint-disable-next-line no-control-regex
  const base = (name.split(/[/\\]/).pop() ?? "").replace(/[\u0000-\u001f\u007f\u2028\u2029\ufffd]/g, "").trim();
  return (base || "image").slice(0, 120);
}

/** Checks one file against the limits and its bytes; the message names the file and what is wrong. */
export function checkImage(
  name: string,
  bytes: Uint8Array,
  limits: ImageLimits,
  /** Its whole size, when only its start was kept (one past the limit is over it). */
  size = bytes.byteLength,
): PromptImageUpload {
  const shown = cleanName(name);
  if (size > limits.maxBytes) {
    throw new ImageRefusedError(
      `“${shown}” is too large (${humanSize(size)}): an image may be at most ${humanSize(limits.maxBytes)}.`,
    );
  }
  if (size === 0) throw new ImageRefusedError(`“${shown}” is empty.`);
  const mediaType = sniffImageType(bytes);
  if (!mediaType) {
    throw new ImageRefusedError(
      `“${shown}” is not a PNG, JPEG, WebP or GIF image (judged by its content, not its name).`,
    );
  }
  return {
    name: shown,
    mediaType,
    bytes,
    size: bytes.byteLength,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

export interface PromptForm {
  /** The form's text fields (intent, prompt, mode…), as readForm would give them. */
  form: FormData;
  images: PromptImageUpload[];
  /** Why the images cannot be sent (too large, too many, not an image); the text fields are still all there. */
  problem?: string;
}

/**
 * Reads a multipart post of the builder page. Text fields are kept whole (the body limit bounds them); each file of
 * the images field is counted as it streams in, and one past its limit is read on to the end but not kept, so the
 * prompt after it still arrives and the page can give the text back with the reason. Throws a 413 or 400 Response
 * when the body itself is too large or broken (as readForm does).
 */
export async function readPromptForm(request: Request, limits: ImageLimits = imageLimits()): Promise<PromptForm> {
  if (request.method.toUpperCase() !== "POST") {
    throw new Response(`${request.method} is not allowed here; send the form with POST.`, {
      status: 405,
      headers: { "Content-Type": "text/plain; charset=utf-8", Allow: "GET, HEAD, POST" },
    });
  }
  const images: PromptImageUpload[] = [];
  const problems: string[] = [];
  let files = 0;
  let textBytes = 0;
  const handler: UploadHandler = async ({ name, filename, data }) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const isFile = typeof filename === "string";
    const keep = isFile ? name === IMAGE_FIELD : true;
    // One byte past the limit is enough to know it is over; the rest is read and dropped.
    const cap = isFile ? limits.maxBytes + 1 : MULTIPART_TEXT_ALLOWANCE;
    for await (const chunk of data) {
      if (keep && size < cap) chunks.push(chunk.subarray(0, cap - size));
      size += chunk.byteLength;
    }
    const bytes = Buffer.concat(chunks);
    if (!isFile) {
      textBytes += size;
      if (textBytes > MULTIPART_TEXT_ALLOWANCE) throw new ImageRefusedError("The form's text is too long.");
      // A browser sends a textarea's line breaks as CRLF in multipart (urlencoded forms from Remix keep LF): the
      // prompt is kept as typed, the same either way.
      return new TextDecoder().decode(bytes).replace(/\r\n/g, "\n");
    }
    // An empty file input posts a part with no name and no bytes.
    if (!keep || (filename === "" && size === 0)) return undefined;
    files++;
    if (files > limits.maxCount) {
      if (files === limits.maxCount + 1) {
        problems.push(
          limits.maxCount === 0
            ? "Images cannot be attached here (PROMPT_IMAGE_MAX_COUNT is 0)."
            : `At most ${limits.maxCount} images can go with one prompt.`,
        );
      }
      return undefined;
    }
    try {
      images.push(checkImage(filename ?? "", new Uint8Array(bytes), limits, size));
    } catch (error) {
      if (!(error instanceof ImageRefusedError)) throw error;
      problems.push(error.message);
    }
    return undefined;
  };
  try {
    const form = await unstable_parseMultipartFormData(request, handler);
    return { form, images, ...(problems.length ? { problem: problems.join(" ") } : {}) };
  } catch (error) {
    if (error instanceof Error && (error as { code?: unknown }).code === "BODY_TOO_LARGE") {
      throw new Response(error.message, { status: 413, headers: { "Content-Type": "text/plain; charset=utf-8" } });
    }
    if (error instanceof ImageRefusedError) {
      throw new Response(error.message, { status: 413, headers: { "Content-Type": "text/plain; charset=utf-8" } });
    }
    throw new Response("That form could not be read.", {
      status: 400,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
}

export function isMultipartRequest(request: Request): boolean {
  return (request.headers.get("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase() === "multipart/form-data";
}

/** What the transcript and the conversation know of an image (never its bytes). */
export interface PromptImageRef {
  id: string;
  name: string;
  mediaType: string;
  size: number;
  sha256: string;
}

type Writer = Pick<Db, "insert">;

/** Stores a prompt's images with its run and message (in the prompt's transaction); ids are chosen by the caller. */
export async function saveImages(
  tx: Writer,
  owner: { projectId: string; runId: string | null; messageId: string | null },
  images: ReadonlyArray<PromptImageUpload & { id: string }>,
): Promise<void> {
  if (images.length === 0) return;
  await tx.insert(promptImages).values(
    images.map((image, position) => ({
      id: image.id,
      ...owner,
      position,
      name: image.name,
      mediaType: image.mediaType,
      size: image.size,
      sha256: image.sha256,
      bytes: image.bytes,
    })),
  );
}

const refColumns = {
  id: promptImages.id,
  name: promptImages.name,
  mediaType: promptImages.mediaType,
  size: promptImages.size,
  sha256: promptImages.sha256,
};

/** The images of these messages, per message id, in the order they were attached. */
export async function imagesOfMessages(db: Db, messageIds: readonly string[]): Promise<Map<string, PromptImageRef[]>> {
  const byMessage = new Map<string, PromptImageRef[]>();
  if (messageIds.length === 0) return byMessage;
  const rows = await db
    .select({ ...refColumns, messageId: promptImages.messageId })
    .from(promptImages)
    .where(inArray(promptImages.messageId, [...messageIds]))
    .orderBy(asc(promptImages.messageId), asc(promptImages.position));
  for (const { messageId, ...ref } of rows) {
    if (!messageId) continue;
    byMessage.set(messageId, [...(byMessage.get(messageId) ?? []), ref]);
  }
  return byMessage;
}

/** The images a run's prompt carried, with their bytes (Retry sends them again). */
export async function imagesOfRun(db: Db, runId: string): Promise<PromptImageUpload[]> {
  const rows = await db
    .select({
      name: promptImages.name,
      mediaType: promptImages.mediaType,
      bytes: promptImages.bytes,
      size: promptImages.size,
      sha256: promptImages.sha256,
    })
    .from(promptImages)
    .innerJoin(messages, eq(messages.id, promptImages.messageId))
    .where(and(eq(promptImages.runId, runId), eq(messages.role, "user")))
    .orderBy(asc(promptImages.position));
  return rows.map((row) => ({ ...row, mediaType: row.mediaType as ImageType, bytes: new Uint8Array(row.bytes) }));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One image of a project the user owns; undefined for anyone else's, a malformed id or none. */
export async function ownedImage(
  db: Db,
  { userId, projectId, imageId }: { userId: string; projectId: string; imageId: string },
): Promise<{ mediaType: string; bytes: Uint8Array; sha256: string } | undefined> {
  if (!UUID.test(projectId) || !UUID.test(imageId)) return undefined;
  const [row] = await db
    .select({ mediaType: promptImages.mediaType, bytes: promptImages.bytes, sha256: promptImages.sha256 })
    .from(promptImages)
    .innerJoin(projects, eq(projects.id, promptImages.projectId))
    .where(and(eq(promptImages.id, imageId), eq(promptImages.projectId, projectId), eq(projects.userId, userId)));
  return row;
}

/**
 * The response an image is served with: its own type, never run as a document (the CSP's sandbox; nosniff is on
 * every response already, server/security-headers.ts).
 */
export function imageResponse(image: { mediaType: string; bytes: Uint8Array; sha256: string }): Response {
  return new Response(new Uint8Array(image.bytes), {
    headers: {
      "Content-Type": image.mediaType,
      "Content-Length": String(image.bytes.byteLength),
      "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
      "Cache-Control": "private, max-age=31536000, immutable",
      ETag: `"${image.sha256}"`,
      "Content-Disposition": "inline",
    },
  });
}
