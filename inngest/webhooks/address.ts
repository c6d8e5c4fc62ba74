/**
 * Which addresses a webhook may be sent to (SSRF). A webhook URL is typed by
 * a builder, and the POST leaves from the app's own network: without a check
 * it could reach the engine, Postgres, a cloud metadata service or anything
 * else only the app can see. So the URL's host is resolved once, every
 * address it resolves to is checked, and the POST connects to the checked
 * address (pinned: no second lookup a rebinding DNS server could answer
 * differently).
 *
 * IP literals arrive here already normalised by the WHATWG URL parser
 * (`http://2130706433/`, `http://0x7f.1/` and `http://017700000001/` are all
 * `127.0.0.1`); IPv6 forms that carry an IPv4 address (mapped, compatible,
 * NAT64, 6to4) are judged by that IPv4 address.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

/** private: refused unless WEBHOOK_ALLOW_PRIVATE; never: no HTTP server is there to reach. */
export type AddressClass = "public" | "private" | "never";

export interface AddressVerdict {
  class: AddressClass;
  /** What the range is, for the refusal message ("loopback", "private (10.0.0.0/8)" …). */
  range?: string;
}

type Range4 = [base: number, bits: number, kind: Exclude<AddressClass, "public">, name: string];

const v4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

const IPV4_RANGES: Range4[] = [
  [v4(0, 0, 0, 0), 8, "never", "unspecified (0.0.0.0/8)"],
  [v4(10, 0, 0, 0), 8, "private", "private (10.0.0.0/8)"],
  [v4(100, 64, 0, 0), 10, "private", "shared address space (100.64.0.0/10, CGNAT)"],
  [v4(127, 0, 0, 0), 8, "private", "loopback (127.0.0.0/8)"],
  [v4(169, 254, 0, 0), 16, "private", "link-local (169.254.0.0/16)"],
  [v4(172, 16, 0, 0), 12, "private", "private (172.16.0.0/12)"],
  [v4(192, 0, 0, 0), 24, "private", "IETF protocol assignments (192.0.0.0/24)"],
  [v4(192, 0, 2, 0), 24, "never", "documentation (192.0.2.0/24)"],
  [v4(192, 88, 99, 0), 24, "never", "6to4 relay anycast (192.88.99.0/24)"],
  [v4(192, 168, 0, 0), 16, "private", "private (192.168.0.0/16)"],
  [v4(198, 18, 0, 0), 15, "private", "benchmarking (198.18.0.0/15)"],
  [v4(198, 51, 100, 0), 24, "never", "documentation (198.51.100.0/24)"],
  [v4(203, 0, 113, 0), 24, "never", "documentation (203.0.113.0/24)"],
  [v4(224, 0, 0, 0), 4, "never", "multicast (224.0.0.0/4)"],
  [v4(240, 0, 0, 0), 4, "never", "reserved (240.0.0.0/4, broadcast)"],
];

/** Dotted-quad IPv4 (what dns.lookup and the URL parser give) to a 32-bit number; undefined if it is not one. */
function parseIpv4(address: string): number | undefined {
  const parts = address.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

function classifyIpv4(value: number): AddressVerdict {
  for (const [base, bits, cls, name] of IPV4_RANGES) {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    if ((value & mask) >>> 0 === base) return { class: cls, range: name };
  }
  return { class: "public" };
}

/** An IPv6 address (any textual form, an IPv4 tail and a %zone included) to its 8 16-bit groups. */
function parseIpv6(address: string): number[] | undefined {
  let text = address.replace(/^\[|\]$/g, "").toLowerCase();
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (isIP(text) !== 6) return undefined;
  // An IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const value = parseIpv4(tail[1]!);
    if (value === undefined) return undefined;
    text = `${text.slice(0, -tail[1]!.length)}${(value >>> 16).toString(16)}:${(value & 0xffff).toString(16)}`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const groups = (s: string) => (s ? s.split(":").map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  if (rest === undefined) return left.length === 8 ? left : undefined;
  const right = groups(rest);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

const ipv4From = (hi: number, lo: number) => ((hi << 16) | lo) >>> 0;

function classifyIpv6(g: number[]): AddressVerdict {
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (g.every((x) => x === 0)) return { class: "never", range: "unspecified (::)" };
  if (zeroUpTo(7) && g[7] === 1) return { class: "private", range: "loopback (::1)" };
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): the IPv4 address is the one reached.
  if (zeroUpTo(5) && (g[5] === 0xffff || g[5] === 0)) return embedded(classifyIpv4(ipv4From(g[6]!, g[7]!)));
  // 64:ff9b::a.b.c.d (NAT64, well-known prefix) and 64:ff9b:1::/48 (local-use NAT64).
  if (g[0] === 0x64 && g[1] === 0xff9b) {
    if (g.slice(2, 6).every((x) => x === 0)) return embedded(classifyIpv4(ipv4From(g[6]!, g[7]!)));
    if (g[2] === 1) return { class: "private", range: "local-use NAT64 (64:ff9b:1::/48)" };
  }
  // 2002:aabb:ccdd::/48 (6to4) reaches aa.bb.cc.dd.
  if (g[0] === 0x2002) return embedded(classifyIpv4(ipv4From(g[1]!, g[2]!)));
  const first = g[0]!;
  if ((first & 0xfe00) === 0xfc00) return { class: "private", range: "unique-local (fc00::/7)" };
  if ((first & 0xffc0) === 0xfe80) return { class: "private", range: "link-local (fe80::/10)" };
  if ((first & 0xffc0) === 0xfec0) return { class: "private", range: "site-local (fec0::/10)" };
  if ((first & 0xff00) === 0xff00) return { class: "never", range: "multicast (ff00::/8)" };
  if (first === 0x100 && g.slice(1, 4).every((x) => x === 0)) return { class: "never", range: "discard (100::/64)" };
  if (first === 0x2001 && g[1] === 0xdb8) return { class: "never", range: "documentation (2001:db8::/32)" };
  // Teredo hides its IPv4 server and client addresses (obfuscated): it cannot be judged, so it is refused.
  if (first === 0x2001 && g[1] === 0) return { class: "private", range: "Teredo (2001::/32)" };
  return { class: "public" };
}

const embedded = (verdict: AddressVerdict): AddressVerdict =>
  verdict.class === "public" ? verdict : { ...verdict, range: `${verdict.range}, inside an IPv6 address` };

/** Which class an IP address (v4 or v6, any textual form dns.lookup or URL gives) belongs to. */
export function classifyAddress(address: string): AddressVerdict {
  const ipv4 = parseIpv4(address);
  if (ipv4 !== undefined) return classifyIpv4(ipv4);
  const groups = parseIpv6(address);
  // Not an address at all: nothing to connect to, so nothing to allow.
  if (!groups) return { class: "never", range: "not an IP address" };
  return classifyIpv6(groups);
}

export class WebhookUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookUrlError";
  }
}

export const MAX_WEBHOOK_URL_CHARS = 2_000;

/** The URL, parsed, if it is one a webhook may have (http or https, no credentials); a WebhookUrlError otherwise. */
export function parseWebhookUrl(input: string): URL {
  const text = input.trim();
  if (!text) throw new WebhookUrlError("Enter the URL to send run ends to.");
  if (text.length > MAX_WEBHOOK_URL_CHARS)
    throw new WebhookUrlError(`That URL is longer than ${MAX_WEBHOOK_URL_CHARS} characters.`);
  if (!URL.canParse(text)) throw new WebhookUrlError("That is not a URL (e.g. https://example.com/hooks/dyno).");
  const url = new URL(text);
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new WebhookUrlError("A webhook URL starts with https:// (or http://).");
  if (url.username || url.password)
    throw new WebhookUrlError("Leave credentials out of the URL: the payload is signed with the webhook's secret.");
  if (!url.hostname) throw new WebhookUrlError("That URL names no host.");
  return url;
}

export interface ResolvedTarget {
  url: URL;
  /** The checked address the POST connects to. */
  address: string;
  family: 4 | 6;
}

export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/**
 * Resolves the URL's host and checks every address it has; throws a
 * WebhookUrlError naming the refused address and its range. One refused
 * address refuses the URL: which one a connection would use is not ours
 * to predict.
 */
export async function resolveWebhookTarget(
  url: URL,
  { allowPrivate, resolve = systemResolver }: { allowPrivate: boolean; resolve?: Resolver },
): Promise<ResolvedTarget> {
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: { address: string; family: number }[];
  try {
    addresses = await resolve(hostname);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new WebhookUrlError(
      code === "ENOTFOUND" || code === "ENODATA"
        ? `The host ${hostname} could not be found.`
        : `The host ${hostname} could not be resolved (${String(code ?? "lookup failed")}).`,
    );
  }
  if (addresses.length === 0) throw new WebhookUrlError(`The host ${hostname} has no address.`);
  for (const { address } of addresses) {
    const verdict = classifyAddress(address);
    if (verdict.class === "public" || (verdict.class === "private" && allowPrivate)) continue;
    const which = address === hostname ? address : `${hostname} (${address})`;
    throw new WebhookUrlError(
      verdict.class === "private"
        ? `Webhooks may not target ${which}: it is a ${verdict.range} address. ` +
            "An operator can allow private targets with WEBHOOK_ALLOW_PRIVATE=1."
        : `Webhooks may not target ${which}: it is a ${verdict.range} address.`,
    );
  }
  const chosen = addresses[0]!;
  return { url, address: chosen.address, family: chosen.family === 6 ? 6 : 4 };
}
