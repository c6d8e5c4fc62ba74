/**
 * How a webhook payload is signed (decision 025 has the receiver's recipe):
 *
 *   Dyno-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * The timestamp is inside the signed text, so a receiver that refuses old
 * timestamps (5 minutes is the suggested window) also refuses a replayed
 * request; the raw body is signed, byte for byte as sent.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "Dyno-Signature";
/** How old a signed timestamp a receiver should accept, by default. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signatureOf(secret: string, timestamp: number, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/** The Dyno-Signature header value for `body` signed at `timestamp` (unix seconds). */
export function signatureHeader(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${signatureOf(secret, timestamp, body)}`;
}

export type Verification = { ok: true; timestamp: number } | { ok: false; reason: string };

/**
 * What a receiver does (and the tests do as one): parse the header, recompute
 * the HMAC over "<t>.<body>", compare in constant time, refuse an old `t`.
 */
export function verifySignature(
  secret: string,
  body: string,
  header: string | null | undefined,
  { now = Math.floor(Date.now() / 1000), toleranceSeconds = DEFAULT_TOLERANCE_SECONDS } = {},
): Verification {
  if (!header) return { ok: false, reason: "no Dyno-Signature header" };
  const fields = new Map<string, string[]>();
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    fields.set(key, [...(fields.get(key) ?? []), part.slice(eq + 1).trim()]);
  }
  const t = fields.get("t")?.[0];
  if (!t || !/^\d{1,12}$/.test(t)) return { ok: false, reason: "no timestamp (t=) in the header" };
  const timestamp = Number(t);
  if (Math.abs(now - timestamp) > toleranceSeconds) return { ok: false, reason: "timestamp outside the tolerance" };
  const expected = Buffer.from(signatureOf(secret, timestamp, body), "hex");
  // Several v1= values may be sent while a secret is rotated: any one that matches will do.
  for (const candidate of fields.get("v1") ?? []) {
    if (!/^[0-9a-f]{64}$/i.test(candidate)) continue;
    if (timingSafeEqual(Buffer.from(candidate, "hex"), expected)) return { ok: true, timestamp };
  }
  return { ok: false, reason: "no v1 signature matches" };
}
