import { describe, expect, it } from "vitest";
import {
  labelOfHost,
  localPreviewOriginTemplate,
  parsePreviewOriginTemplate,
  previewOriginOf,
  previewOriginSource,
} from "./preview-origin.server";

describe("preview origin templates", () => {
  it("parses a wildcard origin, with or without a port", () => {
    expect(parsePreviewOriginTemplate("https://*.preview.example.com")).toEqual({
      protocol: "https:",
      domain: "preview.example.com",
      port: "",
    });
    expect(parsePreviewOriginTemplate("http://*.Lvh.me:4001/")).toEqual({
      protocol: "http:",
      domain: "lvh.me",
      port: ":4001",
    });
  });

  it.each([
    ["no wildcard", "https://preview.example.com"],
    ["a wildcard in the middle", "https://a.*.example.com"],
    ["a path", "https://*.example.com/preview"],
    ["another scheme", "ftp://*.example.com"],
    ["a bare wildcard", "https://*"],
    ["a bad label", "https://*.-bad.example.com"],
    ["a port out of range", "https://*.example.com:70000"],
  ])("refuses %s, saying what it wants", (_label, value) => {
    expect(() => parsePreviewOriginTemplate(value)).toThrow(/wildcard origin|domain name|port/);
  });

  it("makes each project's origin and the CSP source matching them all", () => {
    const template = parsePreviewOriginTemplate("https://*.preview.example.com");
    expect(previewOriginOf(template, "abc-def")).toBe("https://abc-def.preview.example.com");
    expect(previewOriginSource(template)).toBe("https://*.preview.example.com");
    const local = localPreviewOriginTemplate(4001);
    expect(previewOriginOf(local, "abc")).toBe("http://abc.localhost:4001");
    expect(previewOriginSource(local)).toBe("http://*.localhost:4001");
  });

  it("reads the label of a Host under the domain only, case-insensitively, with or without a port", () => {
    const template = parsePreviewOriginTemplate("https://*.preview.example.com");
    expect(labelOfHost(template, "abc.preview.example.com")).toBe("abc");
    expect(labelOfHost(template, "ABC.Preview.Example.com:443")).toBe("abc");
    expect(labelOfHost(template, "abc.preview.example.com.")).toBe("abc");
    expect(labelOfHost(template, "preview.example.com")).toBeNull();
    expect(labelOfHost(template, ".preview.example.com")).toBeNull();
    expect(labelOfHost(template, "a.b.preview.example.com")).toBeNull();
    expect(labelOfHost(template, "abc.preview.example.com.evil.test")).toBeNull();
    expect(labelOfHost(template, "abcpreview.example.com")).toBeNull();
    expect(labelOfHost(template, undefined)).toBeNull();
    expect(labelOfHost(template, "")).toBeNull();
    expect(labelOfHost(template, `${"a".repeat(400)}.preview.example.com`)).toBeNull();
  });
});
