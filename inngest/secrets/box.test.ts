import { describe, expect, it } from "vitest";
import { openSecret, sealSecret } from "../webhooks/secret-box";
import { deriveKey, keyHint, MODEL_KEYS_INFO, open, seal, SealedKeyUnreadableError } from "./box";

const SESSION = "s".repeat(40);
const fromSession = () => deriveKey({ sessionSecret: () => SESSION });

describe("sealing builders' keys", () => {
  it("opens what it sealed, and the sealed text holds no part of the key", () => {
    const key = fromSession();
    const sealed = seal("sk-live-abcdefghijklmnop1234", key, "row-1");
    expect(sealed).toMatch(/^k1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(sealed).not.toContain("sk-live");
    expect(sealed).not.toContain("1234");
    expect(open(sealed, key, "row-1")).toBe("sk-live-abcdefghijklmnop1234");
    // A fresh IV each time: the same key sealed twice looks different.
    expect(seal("sk-live-abcdefghijklmnop1234", key, "row-1")).not.toBe(sealed);
  });

  it("refuses a sealed key moved to another row, tampered with, or opened under another secret", () => {
    const key = fromSession();
    const sealed = seal("sk-abc", key, "row-1");
    expect(() => open(sealed, key, "row-2")).toThrow(SealedKeyUnreadableError);
    const [v, iv, tag, data] = sealed.split(".");
    // The first character always changes (it holds whole bits of the first byte, never padding).
    const flipped = `${v}.${iv}.${tag}.${data!.startsWith("A") ? "B" : "A"}${data!.slice(1)}`;
    expect(() => open(flipped, key, "row-1")).toThrow(SealedKeyUnreadableError);
    expect(() => open("not sealed", key, "row-1")).toThrow(SealedKeyUnreadableError);
    expect(() => open(`${sealed}.extra`, key, "row-1")).toThrow(SealedKeyUnreadableError);
    const other = deriveKey({ sessionSecret: () => "t".repeat(40) });
    expect(() => open(sealed, other, "row-1")).toThrow(/could not be read.*add it again/);
  });

  it("uses DYNO_SECRETS_KEY when set, else SESSION_SECRET, and never the webhook secrets' key", () => {
    const explicit = deriveKey({ secretsKey: "k".repeat(40), sessionSecret: () => SESSION });
    expect(explicit.equals(fromSession())).toBe(false);
    expect(explicit.equals(deriveKey({ secretsKey: "k".repeat(40), sessionSecret: () => "other".repeat(10) }))).toBe(
      true,
    );
    // Another purpose, another key.
    expect(fromSession().equals(deriveKey({ sessionSecret: () => SESSION }, "dyno something else v1"))).toBe(false);
    expect(MODEL_KEYS_INFO).not.toBe("dyno webhook secrets v1");
    // A webhook secret sealed under the same SESSION_SECRET does not open as a model key, nor the other way round.
    const webhookSealed = sealSecret("whsec_x", SESSION).replace(/^v1\./, "k1.");
    expect(() => open(webhookSealed, fromSession(), "")).toThrow(SealedKeyUnreadableError);
    const modelSealed = seal("sk-abc", fromSession(), "").replace(/^k1\./, "v1.");
    expect(() => openSecret(modelSealed, SESSION)).toThrow();
  });

  it("shows only the last four characters, and none of a short key", () => {
    expect(keyHint("sk-proj-abcdefgh1234")).toBe("1234");
    expect(keyHint("short")).toBe("");
  });
});
