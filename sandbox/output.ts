/**
 * Bounded capture of a command's output stream. A build log's start says what
 * ran and its end says how it failed, so over the cap we keep the head and the
 * tail and drop the middle, holding at most about `maxBytes` in memory however
 * much the command prints (`yes` runs until it is killed).
 */

export function omittedMarker(bytes: number): string {
  return `\n[… ${bytes} bytes omitted …]\n`;
}

export class CappedOutput {
  private readonly headCap: number;
  private readonly tailCap: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(readonly maxBytes: number) {
    if (!Number.isFinite(maxBytes) || maxBytes < 0) throw new RangeError(`maxBytes must be >= 0, got ${maxBytes}`);
    this.headCap = Math.floor(maxBytes / 2);
    this.tailCap = maxBytes - this.headCap;
  }

  get totalBytes(): number {
    return this.total;
  }

  get truncated(): boolean {
    return this.total > this.maxBytes;
  }

  push(chunk: Uint8Array): void {
    let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.total += data.length;
    if (this.headBytes < this.headCap) {
      const take = Math.min(this.headCap - this.headBytes, data.length);
      // Copies, so a large chunk's buffer is not kept alive by a small slice.
      this.head.push(Buffer.from(data.subarray(0, take)));
      this.headBytes += take;
      data = data.subarray(take);
    }
    if (data.length === 0 || this.tailCap === 0) return;
    if (data.length >= this.tailCap) {
      this.tail = [Buffer.from(data.subarray(data.length - this.tailCap))];
      this.tailBytes = this.tailCap;
      return;
    }
    this.tail.push(Buffer.from(data));
    this.tailBytes += data.length;
    while (this.tail.length > 0 && this.tailBytes - this.tail[0]!.length >= this.tailCap) {
      this.tailBytes -= this.tail.shift()!.length;
    }
  }

  /** The captured text; when over the cap, head + omitted marker + tail, cut at UTF-8 character boundaries. */
  text(): string {
    const head = Buffer.concat(this.head);
    let tail = Buffer.concat(this.tail);
    if (!this.truncated) return Buffer.concat([head, tail]).toString("utf8");
    if (tail.length > this.tailCap) tail = tail.subarray(tail.length - this.tailCap);
    const headKept = utf8Prefix(head);
    const tailKept = utf8Suffix(tail);
    const omitted = this.total - headKept.length - tailKept.length;
    return headKept.toString("utf8") + omittedMarker(omitted) + tailKept.toString("utf8");
  }
}

/** `bytes` without a multi-byte character cut off at its end. */
export function utf8Prefix(bytes: Buffer): Buffer {
  // Find the start of the last character (at most 4 bytes back) and check it is complete.
  for (let i = bytes.length - 1; i >= 0 && i >= bytes.length - 4; i--) {
    const byte = bytes[i]!;
    if ((byte & 0xc0) === 0x80) continue;
    const length = byte < 0x80 ? 1 : byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return i + length > bytes.length ? bytes.subarray(0, i) : bytes;
  }
  return bytes;
}

/** `bytes` without the continuation bytes of a character whose start was cut off. */
export function utf8Suffix(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length && start < 3 && (bytes[start]! & 0xc0) === 0x80) start++;
  return bytes.subarray(start);
}
