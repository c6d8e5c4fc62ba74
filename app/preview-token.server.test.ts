import { createHmac, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isPreviewProjectId, previewLabel, previewToken, projectIdForPreviewLabel } from "./preview-token.server";

const SECRET = "token-test-secret-0123456789abcdef";

describe("preview labels", () => {
  it("is the dashless uuid and 20 lower-case base32 characters of HMAC-SHA256(secret, 'preview-origin:' + id)", () => {
    const id = randomUUID();
    const mac = createHmac("sha256", SECRET).update(`preview-origin:${id}`).digest();
    // The first 100 bits, five at a time.
    const bits = [...mac].map((b) => b.toString(2).padStart(8, "0")).join("");
    const expected = Array.from(
      { length: 20 },
      (_, i) => "abcdefghijklmnopqrstuvwxyz234567"[parseInt(bits.slice(i * 5, i * 5 + 5), 2)],
    ).join("");
    expect(previewToken(SECRET, id)).toBe(expected);
    const label = previewLabel(SECRET, id);
    expect(label).toBe(`${id.replaceAll("-", "")}-${expected}`);
    expect(label).toMatch(/^[0-9a-f]{32}-[a-z2-7]{20}$/);
    expect(label.length).toBeLessThanOrEqual(63);
  });

  it("differs per project and per secret, and names the same project whatever the id's case", () => {
    const a = randomUUID();
    const b = randomUUID();
    expect(previewToken(SECRET, a)).not.toBe(previewToken(SECRET, b));
    expect(previewToken(SECRET, a)).not.toBe(previewToken(`${SECRET}x`, a));
    expect(previewLabel(SECRET, a.toUpperCase())).toBe(previewLabel(SECRET, a));
  });

  it("reads back the project a label names, and nothing from a wrong one", () => {
    const a = randomUUID();
    const b = randomUUID();
    const label = previewLabel(SECRET, a);
    const [hex, token] = label.split("-") as [string, string];
    expect(projectIdForPreviewLabel(SECRET, label)).toBe(a);
    expect(projectIdForPreviewLabel(SECRET, label.toUpperCase())).toBe(a);
    expect(projectIdForPreviewLabel(SECRET, `${b.replaceAll("-", "")}-${token}`)).toBeNull();
    expect(projectIdForPreviewLabel(SECRET, `${hex}-${previewToken(SECRET, b)}`)).toBeNull();
    expect(projectIdForPreviewLabel(`${SECRET}x`, label)).toBeNull();
    expect(projectIdForPreviewLabel(SECRET, label.slice(0, -1))).toBeNull();
    expect(projectIdForPreviewLabel(SECRET, `${label}a`)).toBeNull();
    expect(
      projectIdForPreviewLabel(SECRET, `${hex}-${token.slice(0, -1)}${token.endsWith("a") ? "b" : "a"}`),
    ).toBeNull();
    expect(projectIdForPreviewLabel(SECRET, `${a}-${token}`)).toBeNull();
    expect(projectIdForPreviewLabel(SECRET, `${hex}-${"é".repeat(20)}`)).toBeNull();
    expect(projectIdForPreviewLabel(SECRET, "")).toBeNull();
    expect(projectIdForPreviewLabel("", label)).toBeNull();
  });

  it("refuses to sign without a secret or for a non-uuid", () => {
    expect(() => previewToken("", randomUUID())).toThrow(/secret/);
    expect(() => previewToken(SECRET, "../etc")).toThrow(/uuid/);
  });

  it("takes uuids as project ids and nothing else", () => {
    expect(isPreviewProjectId(randomUUID())).toBe(true);
    expect(isPreviewProjectId("../etc")).toBe(false);
    expect(isPreviewProjectId(`${randomUUID()}x`)).toBe(false);
    expect(isPreviewProjectId("")).toBe(false);
  });
});
