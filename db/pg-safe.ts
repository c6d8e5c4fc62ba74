/**
 * Makes values storable in Postgres text and jsonb columns. Postgres refuses
 * a NUL character in both (text: "invalid byte sequence for encoding UTF8:
 * 0x00"; jsonb: "unsupported Unicode escape sequence", 22P05) and a lone
 * UTF-16 surrogate in jsonb; tool output, files the agent reads and model
 * replies carry both now and then. The write helpers (run_events and the
 * runs snapshot, agent_entries, messages) pass what they save through here,
 * so such text is saved escaped instead of failing the step.
 *
 * Each of those characters becomes U+FFFD (the replacement character), the
 * same one UTF-8 decoding already puts in place of invalid bytes: one visible
 * mark for "a character that could not be kept", one for one, and never
 * confused with text that really says "\u0000" (JavaScript source often does).
 */

export const REPLACEMENT_CHARACTER = "\uFFFD";

// NUL, or a surrogate half without its partner.
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The string with NUL and lone surrogates replaced by U+FFFD; the same string when there are none. */
export function pgSafeText(text: string): string {
  return text.replace(UNSTORABLE, REPLACEMENT_CHARACTER);
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * A copy of `value` with every string in it made safe (object keys
 * included), for a row or a jsonb document. Only plain objects and arrays are
 * walked: dates, SQL fragments and other class instances pass through as they
 * are. Values without anything to replace come back unchanged.
 */
export function pgSafe<T>(value: T): T {
  if (typeof value === "string") return pgSafeText(value) as T;
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    let changed = false;
    const items = value.map((item: unknown) => {
      const safe = pgSafe(item);
      if (safe !== item) changed = true;
      return safe;
    });
    return (changed ? items : value) as T;
  }
  if (!isPlainObject(value)) return value;
  let changed = false;
  const entries = Object.entries(value).map(([key, item]) => {
    const safeKey = pgSafeText(key);
    const safe = pgSafe(item);
    if (safeKey !== key || safe !== item) changed = true;
    return [safeKey, safe] as const;
  });
  return (changed ? Object.fromEntries(entries) : value) as T;
}
