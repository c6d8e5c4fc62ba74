import { createHmac, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isPreviewProjectId, previewToken, verifyPreviewToken } from "./preview-token.server";

const SECRET = "token-test-secret-0123456789abcdef";

describe("preview tokens", () => {
  it("is base64url(HMAC-SHA256(secret, 'preview:' + projectId))", () => {
    const id = randomUUID();
    const expected = createHmac("sha256", SECRET).update(`preview:${id}`).digest("base64url");
    expect(previewToken(SECRET, id)).toBe(expected);
    expect(previewToken(SECRET, id)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("differs per project and per secret", () => {
    const a = randomUUID();
    const b = randomUUID();
    expect(previewToken(SECRET, a)).not.toBe(previewToken(SECRET, b));
    expect(previewToken(SECRET, a)).not.toBe(previewToken(`${SECRET}x`, a));
  });

  it("verifies the project's own token only", () => {
    const a = randomUUID();
    const b = randomUUID();
    const token = previewToken(SECRET, a);
    expect(verifyPreviewToken(SECRET, a, token)).toBe(true);
    expect(verifyPreviewToken(SECRET, b, token)).toBe(false);
    expect(verifyPreviewToken(`${SECRET}x`, a, token)).toBe(false);
    expect(verifyPreviewToken(SECRET, a, "")).toBe(false);
    expect(verifyPreviewToken(SECRET, a, token.slice(0, -1))).toBe(false);
    expect(verifyPreviewToken(SECRET, a, `${token}A`)).toBe(false);
    expect(verifyPreviewToken(SECRET, a, `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`)).toBe(false);
    // Multi-byte input of the same character count must not throw (timingSafeEqual wants equal byte lengths).
    expect(verifyPreviewToken(SECRET, a, "é".repeat(43))).toBe(false);
    expect(verifyPreviewToken("", a, token)).toBe(false);
  });

  it("refuses to sign without a secret", () => {
    expect(() => previewToken("", randomUUID())).toThrow(/secret/);
  });

  it("takes uuids as project ids and nothing else", () => {
    expect(isPreviewProjectId(randomUUID())).toBe(true);
    expect(isPreviewProjectId("../etc")).toBe(false);
    expect(isPreviewProjectId(`${randomUUID()}x`)).toBe(false);
    expect(isPreviewProjectId("")).toBe(false);
  });
});
