import { describe, expect, it } from "vitest";
import { pngImage, sha256 } from "../tests/support/images";
import { imagePartsOf } from "./server";

describe("imagePartsOf", () => {
  it("describes each image_url part by its message, type, decoded size and sha256, never keeping the data", () => {
    const png = pngImage();
    const url = `data:image/png;base64,${png.toString("base64")}`;
    const parts = imagePartsOf([
      { role: "system", content: "You are Dyno" },
      {
        role: "user",
        content: [
          { type: "text", text: "Like this" },
          { type: "image_url", image_url: { url } },
        ],
      },
      { role: "assistant", content: "{}" },
      { role: "user", content: [{ type: "image_url", image_url: { url: "https://example.test/x.png" } }] },
    ]);
    expect(parts).toEqual([
      { message: 1, role: "user", text: "Like this", mediaType: "image/png", bytes: png.length, sha256: sha256(png) },
      {
        message: 3,
        role: "user",
        text: "",
        mediaType: "(not a data: URL)",
        bytes: 0,
        sha256: sha256(new Uint8Array()),
      },
    ]);
    expect(JSON.stringify(parts)).not.toContain(png.toString("base64").slice(0, 20));
  });

  it("finds none in text-only messages or odd shapes", () => {
    expect(
      imagePartsOf([
        { role: "user", content: "text" },
        { role: "user", content: [null, 3, { type: "image_url" }] },
      ]),
    ).toEqual([]);
  });
});
