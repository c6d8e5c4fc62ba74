/**
 * Builders' API keys at rest (decision 034). Like webhook secrets they must be
 * read back (they are sent to the provider), so they are sealed, not hashed:
 * AES-256-GCM under a key derived (HKDF-SHA256) from DYNO_SECRETS_KEY, or,
 * when that is unset, from SESSION_SECRET with this module's own salt and
 * info, so the key differs from the one that seals webhook secrets
 * (inngest/webhooks/secret-box.ts, unchanged). The row id is bound in as
 * associated data: a sealed key copied onto another builder's row does not
 * open. Nothing here logs, and no error carries the plaintext.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

const VERSION = "k1";
const SALT = "dyno-secrets";
/** Per purpose: another kind of secret sealed here later gets its own info string, hence its own key. */
export const MODEL_KEYS_INFO = "dyno model keys v1";

export interface SecretsKeySource {
  /** DYNO_SECRETS_KEY, when the operator set one. */
  secretsKey?: string;
  /** The fallback: SESSION_SECRET (or the development one kept in DYNO_DATA_DIR). */
  sessionSecret: () => string;
}

/** The 32-byte AES key for one purpose. */
export function deriveKey(source: SecretsKeySource, info: string = MODEL_KEYS_INFO): Buffer {
  const material = source.secretsKey ?? source.sessionSecret();
  return Buffer.from(hkdfSync("sha256", material, SALT, info, 32));
}

/** "k1.<iv>.<tag>.<ciphertext>", each part base64url. `context` (e.g. the row id) must match when opening. */
export function seal(plaintext: string, key: Buffer, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(context, "utf8"));
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return [
    VERSION,
    iv.toString("base64url"),
    cipher.getAuthTag().toString("base64url"),
    sealed.toString("base64url"),
  ].join(".");
}

export class SealedKeyUnreadableError extends Error {
  override name = "SealedKeyUnreadableError";
  constructor(what = "The saved API key") {
    super(
      `${what} could not be read (DYNO_SECRETS_KEY or SESSION_SECRET changed since it was saved): ` +
        "remove it in Settings and add it again.",
    );
  }
}

export function open(sealed: string, key: Buffer, context: string, what?: string): string {
  const [version, iv, tag, data, extra] = sealed.split(".");
  if (version !== VERSION || !iv || !tag || data === undefined || extra !== undefined)
    throw new SealedKeyUnreadableError(what);
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(data, "base64url")), decipher.final()]).toString("utf8");
  } catch {
    throw new SealedKeyUnreadableError(what);
  }
}

/** What a page shows for a key: its last four characters. */
export function keyHint(apiKey: string): string {
  return apiKey.length > 8 ? apiKey.slice(-4) : "";
}
