import { describe, expect, it } from "vitest";
import { MAX_TITLE_CHARS, ProjectTitle } from "./project-title";

describe("a project's title", () => {
  it("keeps a title, tidying its spaces", () => {
    expect(ProjectTitle.parse("  Todo page ")).toBe("Todo page");
    expect(ProjectTitle.parse("Todo\n\tpage")).toBe("Todo page");
    expect(ProjectTitle.parse("🚀 Launch")).toBe("🚀 Launch");
  });

  it("refuses a title with nothing visible in it, saying so", () => {
    for (const blank of ["", "   ", "\n\t", "\u200b\u200b", "\u00a0"]) {
      const parsed = ProjectTitle.safeParse(blank);
      expect(parsed.success, JSON.stringify(blank)).toBe(false);
      expect(parsed.error?.issues.map((i) => i.message)).toEqual(["Give the project a title."]);
    }
  });

  it("refuses a title that is too long", () => {
    expect(ProjectTitle.safeParse("x".repeat(MAX_TITLE_CHARS)).success).toBe(true);
    expect(ProjectTitle.safeParse("x".repeat(MAX_TITLE_CHARS + 1)).error?.issues[0]?.message).toMatch(/under 80/);
  });
});
