import { describe, expect, it } from "vitest";
import { pngImage, sha256, SVG_IMAGE } from "../../tests/support/images";
import { checkImage, cleanName, ImageRefusedError, readPromptForm, sniffImageType } from "./prompt-images.server";

const limits = { maxBytes: 2048, maxCount: 2 };

function multipart(parts: Array<[string, string] | [string, Uint8Array, string]>): Request {
  const form = new FormData();
  for (const part of parts) {
    if (part.length === 2) form.append(part[0], part[1]);
    else form.append(part[0], new Blob([new Uint8Array(part[1])], { type: "image/png" }), part[2]);
  }
  return new Request("http://dyno.test/projects/x", { method: "POST", body: form });
}

describe("sniffImageType", () => {
  it("knows PNG, JPEG, GIF and WebP by their first bytes", () => {
    expect(sniffImageType(pngImage())).toBe("image/png");
    expect(sniffImageType(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]))).toBe("image/jpeg");
    expect(sniffImageType(Buffer.from("GIF89a\x01\x00\x01\x00", "latin1"))).toBe("image/gif");
    expect(sniffImageType(Buffer.from("RIFF\x24\x00\x00\x00WEBPVP8 ", "latin1"))).toBe("image/webp");
  });

  it("refuses SVG, HTML, text and truncated headers whatever they are called", () => {
    expect(sniffImageType(SVG_IMAGE)).toBeUndefined();
    expect(sniffImageType(Buffer.from("<html><script>alert(1)</script>"))).toBeUndefined();
    expect(sniffImageType(Buffer.from("just text, renamed shot.png"))).toBeUndefined();
    expect(sniffImageType(Buffer.from([0x89, 0x50, 0x4e]))).toBeUndefined();
    expect(sniffImageType(Buffer.from("RIFF\x24\x00\x00\x00WAVEfmt ", "latin1"))).toBeUndefined();
    expect(sniffImageType(new Uint8Array())).toBeUndefined();
  });
});

describe("checkImage", () => {
  it("describes a good image with its type, size and sha256", () => {
    const png = pngImage();
    expect(checkImage("shots/screen.png", png, limits)).toMatchObject({
      name: "screen.png",
      mediaType: "image/png",
      size: png.byteLength,
      sha256: sha256(png),
    });
  });

  it("refuses one over the limit, an empty one and a non-image with the file named", () => {
    expect(() => checkImage("big.png", pngImage(4, 3, [0, 0, 0], 4000), limits)).toThrow(
      /“big\.png” is too large \(4 KiB\): an image may be at most 2 KiB\./,
    );
    expect(() => checkImage("empty.png", new Uint8Array(), limits)).toThrow(/“empty\.png” is empty/);
    expect(() => checkImage("logo.svg", SVG_IMAGE, limits)).toThrow(ImageRefusedError);
    expect(() => checkImage("notes.png", Buffer.from("hello"), limits)).toThrow(
      /“notes\.png” is not a PNG, JPEG, WebP or GIF image \(judged by its content, not its name\)/,
    );
  });

  it("shows hostile names harmlessly", () => {
    expect(cleanName("../../etc/\u0000pa\u202ass\nwd.png")).toBe("pa\u202asswd.png");
    expect(cleanName("")).toBe("image");
    expect(cleanName("x".repeat(500))).toHaveLength(120);
  });
});

describe("readPromptForm", () => {
  it("keeps the text fields and the checked images, in order", async () => {
    const a = pngImage(2, 2);
    const b = pngImage(3, 3, [1, 2, 3]);
    const { form, images, problem } = await readPromptForm(
      multipart([
        ["intent", "prompt"],
        ["prompt", "Make it look like this ✓\r\nin blue"],
        ["images", a, "a.png"],
        ["images", b, "b.png"],
      ]),
      limits,
    );
    expect(problem).toBeUndefined();
    expect(form.get("prompt")).toBe("Make it look like this ✓\nin blue");
    expect(form.get("intent")).toBe("prompt");
    expect(form.get("images")).toBeNull();
    expect(images.map((i) => [i.name, i.sha256, i.size])).toEqual([
      ["a.png", sha256(a), a.byteLength],
      ["b.png", sha256(b), b.byteLength],
    ]);
  });

  it("ignores an empty file input", async () => {
    const { images, problem } = await readPromptForm(
      multipart([
        ["prompt", "no image"],
        ["images", new Uint8Array(), ""],
      ]),
      limits,
    );
    expect(images).toEqual([]);
    expect(problem).toBeUndefined();
  });

  it("reads on past an oversized or unknown file and a file too many, keeping the prompt after them", async () => {
    const { form, problem } = await readPromptForm(
      multipart([
        ["images", pngImage(4, 3, [0, 0, 0], 100_000), "huge.png"],
        ["images", SVG_IMAGE, "logo.svg"],
        ["images", pngImage(), "ok.png"],
        ["images", pngImage(), "one-too-many.png"],
        ["prompt", "the text comes last"],
      ]),
      limits,
    );
    expect(form.get("prompt")).toBe("the text comes last");
    expect(problem).toContain("“huge.png” is too large (98 KiB)");
    expect(problem).toContain("“logo.svg” is not a PNG, JPEG, WebP or GIF image");
    expect(problem).toContain("At most 2 images can go with one prompt.");
  });

  it("answers a broken body with 400 and a GET with 405", async () => {
    const broken = new Request("http://dyno.test/p", {
      method: "POST",
      headers: { "Content-Type": "multipart/form-data; boundary=xyz" },
      body: '--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nunterminated',
    });
    const refusal = await readPromptForm(broken, limits).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(Response);
    expect((refusal as Response).status).toBe(400);
    const get = await readPromptForm(new Request("http://dyno.test/p"), limits).catch((e: unknown) => e);
    expect((get as Response).status).toBe(405);
  });
});
