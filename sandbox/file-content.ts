/**
 * What a file's bytes are, for readFile: text (UTF-8, with any invalid bytes
 * shown as U+FFFD) or binary (an image, a .wasm, an archive). Binary content
 * is never decoded into a tool result; the agent is told its size and type.
 * Both providers decode through here, so they agree.
 */
import { isUtf8 } from "node:buffer";
import { utf8Prefix } from "./output";
import type { FileRead } from "./types";

/** How much of a file's start is looked at, as git does (it checks 8000 bytes for a NUL). */
export const SNIFF_BYTES = 8 * 1024;

const GENERIC_BINARY = "application/octet-stream";

type Signature = { mime: string; bytes: (number | null)[]; offset?: number };

const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

/** Common formats by their first bytes (null matches any byte). */
const SIGNATURES: Signature[] = [
  { mime: "image/png", bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { mime: "image/jpeg", bytes: [0xff, 0xd8, 0xff] },
  { mime: "image/gif", bytes: ascii("GIF8") },
  { mime: "image/webp", bytes: [...ascii("RIFF"), null, null, null, null, ...ascii("WEBP")] },
  { mime: "audio/wav", bytes: [...ascii("RIFF"), null, null, null, null, ...ascii("WAVE")] },
  { mime: "image/avif", bytes: ascii("ftypavif"), offset: 4 },
  { mime: "video/mp4", bytes: ascii("ftyp"), offset: 4 },
  { mime: "image/x-icon", bytes: [0x00, 0x00, 0x01, 0x00] },
  { mime: "application/wasm", bytes: [0x00, 0x61, 0x73, 0x6d] },
  { mime: "application/pdf", bytes: ascii("%PDF-") },
  { mime: "application/zip", bytes: [0x50, 0x4b, 0x03, 0x04] },
  { mime: "application/gzip", bytes: [0x1f, 0x8b] },
  { mime: "application/x-xz", bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { mime: "application/x-7z-compressed", bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { mime: "application/x-tar", bytes: ascii("ustar"), offset: 257 },
  { mime: "font/woff", bytes: ascii("wOFF") },
  { mime: "font/woff2", bytes: ascii("wOF2") },
  { mime: "font/otf", bytes: ascii("OTTO") },
  { mime: "font/ttf", bytes: [0x00, 0x01, 0x00, 0x00, 0x00] },
  { mime: "audio/mpeg", bytes: ascii("ID3") },
  { mime: "audio/ogg", bytes: ascii("OggS") },
  { mime: "application/vnd.sqlite3", bytes: [...ascii("SQLite format 3"), 0x00] },
  { mime: "application/x-elf", bytes: [0x7f, 0x45, 0x4c, 0x46] },
  { mime: "application/java-vm", bytes: [0xca, 0xfe, 0xba, 0xbe] },
];

function matches(head: Buffer, { bytes, offset = 0 }: Signature): boolean {
  if (head.length < offset + bytes.length) return false;
  return bytes.every((byte, i) => byte === null || head[offset + i] === byte);
}

/**
 * The binary type of a file from its first bytes, or undefined for text: a
 * known signature, a NUL in the first 8 KiB, or a start that is mostly not
 * UTF-8 (the same rule as the builder's file view). A text file with a few
 * bytes that are not UTF-8 (a Latin-1 "é") stays text.
 */
export function sniffBinary(head: Buffer): { mime: string } | undefined {
  const sample = head.subarray(0, SNIFF_BYTES);
  const known = SIGNATURES.find((signature) => matches(sample, signature));
  if (known) return { mime: known.mime };
  if (sample.includes(0)) return { mime: GENERIC_BINARY };
  const text = utf8Prefix(sample);
  if (isUtf8(text)) return undefined;
  let replaced = 0;
  const decoded = text.toString("utf8");
  for (const c of decoded) if (c === "\uFFFD") replaced++;
  return replaced > 8 && replaced > decoded.length / 20 ? { mime: GENERIC_BINARY } : undefined;
}

/** A FileRead from the first bytes of a file of `size` bytes (`data` may be all of it). */
export function fileReadOf(path: string, data: Buffer, size: number): FileRead {
  const truncated = size > data.length;
  const binary = sniffBinary(data);
  if (binary) return { path, content: "", bytes: size, truncated, binary };
  const text = truncated ? utf8Prefix(data) : data;
  return {
    path,
    content: text.toString("utf8"),
    bytes: size,
    truncated,
    ...(isUtf8(text) ? {} : { invalidUtf8: true }),
  };
}
