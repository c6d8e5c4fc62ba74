/**
 * Webhook secrets at rest. A secret is the HMAC key the receiver shares, so
 * Dyno must be able to read it back (unlike a password, it cannot be
 * hashed). It is sealed with AES-256-GCM under a key derived (HKDF-SHA256)
 * from SESSION_SECRET, so a copy of the database alone does not give away
 * the keys that sign payloads. Rotating SESSION_SECRET makes the stored
 * secrets unreadable: those deliveries fail with a message saying to add the
 * webhook again.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

const VERSION = "v1";
const INFO = "dyno webhook secrets v1";

function keyFrom(sessionSecret: string): Buffer {
  return Buffer.from(hkdfSync("sha256", sessionSecret, "dyno-webhooks", INFO, 32));
}

/** "v1.<iv>.<tag>.<ciphertext>", each part base64url. */
export function sealSecret(secret: string, sessionSecret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keyFrom(sessionSecret), iv);
  const sealed = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return [VERSION, iv, cipher.getAuthTag(), sealed]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(".");
}

export class SecretUnreadableError extends Error {
  constructor() {
    super(
      "The webhook's secret could not be read (SESSION_SECRET changed since it was added): delete the webhook and add it again.",
    );
    this.name = "SecretUnreadableError";
  }
}

export function openSecret(sealed: string, sessionSecret: string): string {
  const [version, iv, tag, data] = sealed.split(".");
  if (version !== VERSION || !iv || !tag || data === undefined) throw new SecretUnreadableError();
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyFrom(sessionSecret), Buffer.from(iv, "base64url"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(data, "base64url")), decipher.final()]).toString("utf8");
  } catch {
    throw new SecretUnreadableError();
  }
}

/** A new webhook secret: 32 random bytes, shown to the builder once. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}
