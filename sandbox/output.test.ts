import { describe, expect, it } from "vitest";
import { CappedOutput, utf8Prefix, utf8Suffix } from "./output";

function capture(maxBytes: number, ...chunks: string[]): CappedOutput {
  const output = new CappedOutput(maxBytes);
  for (const chunk of chunks) output.push(Buffer.from(chunk));
  return output;
}

describe("CappedOutput", () => {
  it("keeps everything up to the cap", () => {
    const output = capture(10, "hello", " ", "you!");
    expect(output.text()).toBe("hello you!");
    expect(output.truncated).toBe(false);
  });

  it("keeps the head and the tail over the cap, saying how much was dropped", () => {
    const output = capture(10, "0123456789", "abcdefghij", "KLMNOPQRST");
    expect(output.truncated).toBe(true);
    expect(output.totalBytes).toBe(30);
    expect(output.text()).toBe("01234\n[… 20 bytes omitted …]\nPQRST");
  });

  it("keeps the right tail across many small chunks and one huge one", () => {
    const small = new CappedOutput(8);
    for (const char of "abcdefghijklmnopqrstuvwxyz") small.push(Buffer.from(char));
    expect(small.text()).toBe("abcd\n[… 18 bytes omitted …]\nwxyz");

    const huge = new CappedOutput(8);
    huge.push(Buffer.from("x".repeat(1_000_000) + "TAIL"));
    expect(huge.text()).toBe("xxxx\n[… 999996 bytes omitted …]\nTAIL");
  });

  it("never cuts a character in half", () => {
    // "é" is 2 bytes: the 5-byte head holds two and a half of them.
    const output = capture(10, "é".repeat(20));
    expect(output.text()).toBe("éé\n[… 32 bytes omitted …]\néé");
  });

  it("holds at most about maxBytes however much is pushed", () => {
    const output = new CappedOutput(1024);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 200; i++) output.push(chunk);
    const held = output as unknown as { head: Buffer[]; tail: Buffer[] };
    const bytesHeld = [...held.head, ...held.tail].reduce((sum, buffer) => sum + buffer.length, 0);
    expect(bytesHeld).toBeLessThanOrEqual(1024);
    expect(output.totalBytes).toBe(200 * 64 * 1024);
  });

  it("with a cap of zero keeps only the marker", () => {
    expect(capture(0, "abc").text()).toBe("\n[… 3 bytes omitted …]\n");
    expect(capture(0).text()).toBe("");
  });
});

describe("utf8 boundaries", () => {
  const euro = Buffer.from("€"); // 3 bytes
  it("drops an incomplete character at the end", () => {
    expect(utf8Prefix(Buffer.concat([Buffer.from("a"), euro.subarray(0, 2)])).toString()).toBe("a");
    expect(utf8Prefix(Buffer.concat([Buffer.from("a"), euro])).toString()).toBe("a€");
    expect(utf8Prefix(Buffer.from("🚀").subarray(0, 3)).length).toBe(0);
  });

  it("drops continuation bytes at the start", () => {
    expect(utf8Suffix(Buffer.concat([euro.subarray(1), Buffer.from("b")])).toString()).toBe("b");
    expect(utf8Suffix(Buffer.from("€b")).toString()).toBe("€b");
  });
});
