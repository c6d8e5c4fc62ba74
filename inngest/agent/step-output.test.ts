import { describe, expect, it } from "vitest";
import { stepOutput } from "./step-output";

describe("a step's output for the builder", () => {
  it("keeps short output as it is", () => {
    expect(stepOutput("$ ls\n(exited with code 0 after 0.1 s)\nstdout:\nindex.html\n")).toBe(
      "$ ls\n(exited with code 0 after 0.1 s)\nstdout:\nindex.html\n",
    );
  });

  it("keeps the head and the tail of long output, within the bound, and says how much it left out", () => {
    const text = `START\n${"a".repeat(50_000)}\nEND\n`;
    const shown = stepOutput(text, 1024);
    expect(shown.startsWith("START\naaa")).toBe(true);
    expect(shown.endsWith("aaa\nEND\n")).toBe(true);
    expect(shown).toContain(`[… ${Buffer.byteLength(text) - 1024} bytes omitted …]`);
    expect(Buffer.byteLength(shown)).toBeLessThan(1024 + 40);
  });

  it("never cuts a character in half", () => {
    const shown = stepOutput("é".repeat(1000), 101);
    expect(shown).not.toContain("\uFFFD");
    expect(shown.replace(/\n\[… \d+ bytes omitted …\]\n/, "")).toMatch(/^é+$/);
  });

  it("shows a NUL byte as its symbol, so the event can be saved", () => {
    expect(stepOutput("a\0b")).toBe("a\u2400b");
  });
});
