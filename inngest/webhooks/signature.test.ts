import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openSecret, sealSecret, SecretUnreadableError } from "./secret-box";
import { signatureHeader, verifySignature } from "./signature";

const secret = "whsec_test-secret";
const body = JSON.stringify({ type: "run.ended", run: { id: "r" } });

describe("webhook signatures", () => {
  it("is hex HMAC-SHA256 of '<t>.<body>' under the secret, as documented", () => {
    const header = signatureHeader(secret, body, 1_800_000_000);
    const expected = createHmac("sha256", secret).update(`1800000000.${body}`).digest("hex");
    expect(header).toBe(`t=1800000000,v1=${expected}`);
  });

  it("verifies with the same secret and body, within the tolerance", () => {
    const header = signatureHeader(secret, body, 1_800_000_000);
    expect(verifySignature(secret, body, header, { now: 1_800_000_100 })).toEqual({
      ok: true,
      timestamp: 1_800_000_000,
    });
  });

  it("refuses another secret, a changed body, an old timestamp, a moved timestamp and a missing header", () => {
    const header = signatureHeader(secret, body, 1_800_000_000);
    const at = { now: 1_800_000_000 };
    expect(verifySignature("other", body, header, at)).toMatchObject({ ok: false });
    expect(verifySignature(secret, `${body} `, header, at)).toMatchObject({ ok: false });
    expect(verifySignature(secret, body, header, { now: 1_800_000_301 })).toMatchObject({
      ok: false,
      reason: "timestamp outside the tolerance",
    });
    const moved = header.replace("t=1800000000", "t=1800000001");
    expect(verifySignature(secret, body, moved, { now: 1_800_000_001 })).toMatchObject({ ok: false });
    expect(verifySignature(secret, body, null, at)).toMatchObject({ ok: false });
    expect(verifySignature(secret, body, "t=1800000000,v1=zz", at)).toMatchObject({ ok: false });
  });
});

describe("webhook secrets at rest", () => {
  const sessionSecret = "s".repeat(32);

  it("seal to a text that does not contain the secret, and open again with the same session secret", () => {
    const sealed = sealSecret(secret, sessionSecret);
    expect(sealed).not.toContain(secret);
    expect(sealed).toMatch(/^v1\./);
    expect(sealSecret(secret, sessionSecret)).not.toBe(sealed); // a fresh IV each time
    expect(openSecret(sealed, sessionSecret)).toBe(secret);
  });

  it("cannot be opened under another session secret or once tampered with", () => {
    const sealed = sealSecret(secret, sessionSecret);
    expect(() => openSecret(sealed, "t".repeat(32))).toThrow(SecretUnreadableError);
    const [v, iv, tag, data] = sealed.split(".");
    const flipped = `${v}.${iv}.${tag}.${data!.slice(0, -2)}${data!.slice(-2) === "AA" ? "AB" : "AA"}`;
    expect(() => openSecret(flipped, sessionSecret)).toThrow(/SESSION_SECRET changed/);
    expect(() => openSecret("plain", sessionSecret)).toThrow(SecretUnreadableError);
  });
});
