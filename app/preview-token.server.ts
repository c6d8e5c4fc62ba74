/**
 * Preview links: `/<projectId>/<token>/…` on the preview server, where the
 * token is an HMAC of the project id under the app's secret. Only someone the
 * app handed the link to (the project's builder) can open a project's
 * preview, and a token for one project opens no other. Kept free of app
 * imports: the preview server (server/preview.ts) and the routes share it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Project ids are uuids; anything else never names a preview. */
export function isPreviewProjectId(id: string): boolean {
  return UUID.test(id);
}

/** base64url(HMAC-SHA256(secret, "preview:" + projectId)): 43 characters. */
export function previewToken(secret: string, projectId: string): string {
  if (!secret) throw new Error("previewToken needs a secret");
  return createHmac("sha256", secret).update(`preview:${projectId}`).digest("base64url");
}

/** Whether `token` is the project's preview token, compared in constant time. */
export function verifyPreviewToken(secret: string, projectId: string, token: string): boolean {
  if (!secret || typeof token !== "string") return false;
  const expected = Buffer.from(previewToken(secret, projectId), "utf8");
  const given = Buffer.from(token, "utf8");
  // timingSafeEqual throws on a length mismatch; the length of a valid token is public anyway.
  return given.length === expected.length && timingSafeEqual(given, expected);
}
