import { describe, expect, it } from "vitest";
import { fileReadOf, sniffBinary, SNIFF_BYTES } from "./file-content";

const PNG = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
const WASM = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

describe("sniffBinary", () => {
  it("names common formats from their first bytes", () => {
    expect(sniffBinary(PNG)).toEqual({ mime: "image/png" });
    expect(sniffBinary(WASM)).toEqual({ mime: "application/wasm" });
    expect(sniffBinary(Buffer.from("GIF89a\x01\x00", "latin1"))).toEqual({ mime: "image/gif" });
    expect(sniffBinary(Buffer.from("RIFF\x10\x00\x00\x00WEBPVP8 ", "latin1"))).toEqual({ mime: "image/webp" });
  });

  it("calls a NUL in the first 8 KiB binary, and one after it text", () => {
    expect(sniffBinary(Buffer.from("abc\0def"))).toEqual({ mime: "application/octet-stream" });
    const late = Buffer.concat([Buffer.alloc(SNIFF_BYTES, "a"), Buffer.from("\0")]);
    expect(sniffBinary(late)).toBeUndefined();
  });

  it("keeps text with a few bytes that are not UTF-8, and calls mostly undecodable bytes binary", () => {
    expect(sniffBinary(Buffer.from("caf\xe9 au lait, cr\xe8me br\xfbl\xe9e", "latin1"))).toBeUndefined();
    expect(sniffBinary(Buffer.from(Array.from({ length: 200 }, (_, i) => 0x80 + (i % 64))))).toEqual({
      mime: "application/octet-stream",
    });
    expect(sniffBinary(Buffer.from("plain text, ünïcødé ✓\n"))).toBeUndefined();
  });
});

describe("fileReadOf", () => {
  it("gives a binary file no content, only its size and type", () => {
    expect(fileReadOf("logo.png", PNG, 5000)).toEqual({
      path: "logo.png",
      content: "",
      bytes: 5000,
      truncated: true,
      binary: { mime: "image/png" },
    });
  });

  it("decodes text, marking bytes that are not UTF-8, and cuts a truncated read at a character boundary", () => {
    const latin1 = fileReadOf("old.txt", Buffer.from("caf\xe9", "latin1"), 4);
    expect(latin1).toEqual({ path: "old.txt", content: "caf\uFFFD", bytes: 4, truncated: false, invalidUtf8: true });
    const cut = fileReadOf("e.txt", Buffer.from("aé").subarray(0, 2), 3);
    expect(cut).toEqual({ path: "e.txt", content: "a", bytes: 3, truncated: true });
  });
});
