/**
 * Preview origins: each project's preview is served on a host of its own whose first DNS label is
 * `<project uuid without dashes>-<token>`, where the token is a lower-case base32 HMAC of the project id under the
 * app's secret (decision 021). The label is the capability: only someone the app handed the link to (the project's
 * builder) can open the preview, and it names exactly one project. Kept free of app imports: the preview server
 * (server/preview/) and the routes share it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Project ids are uuids; anything else never names a preview. */
export function isPreviewProjectId(id: string): boolean {
  return UUID.test(id);
}

/** Characters of the token: 20 base32 characters carry 100 bits of the HMAC. */
export const PREVIEW_TOKEN_LENGTH = 20;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
/** The whole label: 32 hex digits, a dash, the token (53 characters; a DNS label may have 63). */
const LABEL = new RegExp(`^([0-9a-f]{32})-([a-z2-7]{${PREVIEW_TOKEN_LENGTH}})$`);

function base32(bytes: Buffer, characters: number): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < characters) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
    if (out.length >= characters) break;
  }
  return out;
}

/**
 * The project's preview token: base32(HMAC-SHA256(secret, "preview-origin:" + id)), cut to 20 lower-case
 * characters. Lower case because browsers lower-case host names: an upper-case token would not survive the trip.
 */
export function previewToken(secret: string, projectId: string): string {
  if (!secret) throw new Error("previewToken needs a secret");
  if (!isPreviewProjectId(projectId)) throw new Error("previewToken needs a project uuid");
  const mac = createHmac("sha256", secret).update(`preview-origin:${projectId.toLowerCase()}`).digest();
  return base32(mac, PREVIEW_TOKEN_LENGTH);
}

/** The host label naming the project's preview origin. */
export function previewLabel(secret: string, projectId: string): string {
  return `${projectId.toLowerCase().replaceAll("-", "")}-${previewToken(secret, projectId)}`;
}

/**
 * The project id a preview host label names, or null when it is not a label at all or its token is wrong (compared
 * in constant time). Case-insensitive, as DNS is.
 */
export function projectIdForPreviewLabel(secret: string, label: string): string | null {
  if (!secret || typeof label !== "string") return null;
  const match = LABEL.exec(label.toLowerCase());
  if (!match) return null;
  const hex = match[1]!;
  const projectId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const expected = Buffer.from(previewToken(secret, projectId), "utf8");
  const given = Buffer.from(match[2]!, "utf8");
  return given.length === expected.length && timingSafeEqual(given, expected) ? projectId : null;
}
