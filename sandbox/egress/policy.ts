/**
 * The egress policy: which host:port a sandboxed command may reach through the egress proxy (proxy.ts). Only
 * names (and, when an operator lists them, addresses) on the allow-list; the default list is the package registry
 * the host's npm uses. Pure functions, so the proxy, the app process and tests share one reading of the rules.
 */
import net from "node:net";
import os from "node:os";

export interface EgressAllowEntry {
  /** Normalised: lower case, no trailing dot, IPv6 without brackets. */
  host: string;
  port: number;
}

export interface EgressPolicy {
  /** The registry URL given to npm inside the sandbox (npm_config_registry), e.g. "https://registry.npmjs.org/". */
  registryUrl: string;
  /** The registry's own entry (first of `allow`), for messages: "registry.npmjs.org". */
  registryHost: string;
  allow: EgressAllowEntry[];
}

/** Hosts of at most this many characters (DNS's own bound is 253). */
const MAX_HOST_LENGTH = 253;
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** Lower case, one trailing dot dropped, IPv6 brackets removed. undefined: not a host name or an IP address. */
export function normaliseHost(raw: string): string | undefined {
  if (typeof raw !== "string") return undefined;
  let host = raw.trim().toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
    return net.isIPv6(host) ? host : undefined;
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (!host || host.length > MAX_HOST_LENGTH) return undefined;
  if (net.isIP(host)) return host;
  return host.split(".").every((label) => LABEL.test(label)) ? host : undefined;
}

function parsePort(raw: string): number | undefined {
  if (!/^\d{1,5}$/.test(raw)) return undefined;
  const port = Number(raw);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** "host", "host:port", "[v6]:port" (or bare v6). Default port 443. undefined when malformed. */
export function parseHostPort(raw: string, defaultPort = 443): EgressAllowEntry | undefined {
  const text = raw.trim();
  let hostPart = text;
  let port = defaultPort;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    hostPart = `[${bracketed[1]}]`;
    if (bracketed[2] !== undefined) {
      const parsed = parsePort(bracketed[2]);
      if (parsed === undefined) return undefined;
      port = parsed;
    }
  } else if (!net.isIPv6(text)) {
    const colon = text.lastIndexOf(":");
    if (colon !== -1) {
      const parsed = parsePort(text.slice(colon + 1));
      if (parsed === undefined) return undefined;
      port = parsed;
      hostPart = text.slice(0, colon);
    }
  }
  const host = normaliseHost(hostPart);
  return host ? { host, port } : undefined;
}

/** SANDBOX_EGRESS_ALLOW: a comma list of host or host:port (default port 443). Throws with the bad item named. */
export function parseAllowList(text: string | undefined): EgressAllowEntry[] {
  if (!text) return [];
  const entries: EgressAllowEntry[] = [];
  for (const item of text.split(",")) {
    if (!item.trim()) continue;
    const entry = parseHostPort(item);
    if (!entry) throw new Error(`${JSON.stringify(item.trim())} is not a host or host:port`);
    entries.push(entry);
  }
  if (entries.length > 100) throw new Error(`at most 100 hosts, got ${entries.length}`);
  return entries;
}

/** The allow-list entry of a registry URL: its host and port (443 for https, 80 for http, unless it names one). */
export function registryEntry(registryUrl: string): EgressAllowEntry {
  const url = new URL(registryUrl);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`registry ${registryUrl} is not an http(s) URL`);
  }
  const host = normaliseHost(url.hostname);
  if (!host) throw new Error(`registry ${registryUrl} has no usable host`);
  return { host, port: url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80 };
}

/** The registry URL without credentials (a host's npm may carry user:password@ in it): none of it goes inside. */
export function withoutCredentials(registryUrl: string): string {
  const url = new URL(registryUrl);
  if (!url.username && !url.password) return registryUrl;
  url.username = "";
  url.password = "";
  return url.toString();
}

export function createEgressPolicy(rawRegistryUrl: string, extra: EgressAllowEntry[] = []): EgressPolicy {
  const registryUrl = withoutCredentials(rawRegistryUrl);
  const registry = registryEntry(registryUrl);
  const allow = [registry];
  for (const entry of extra) {
    if (!allow.some((known) => known.host === entry.host && known.port === entry.port)) allow.push(entry);
  }
  return { registryUrl, registryHost: registry.host, allow };
}

export type EgressDecision = { allowed: true; host: string; port: number } | { allowed: false; reason: string };

const listed = (policy: EgressPolicy, host: string, port: number) =>
  policy.allow.some((entry) => entry.host === host && entry.port === port);

/** Before any DNS: is this host:port on the allow-list? `host` is as asked for (it is normalised here). */
export function checkTarget(policy: EgressPolicy, rawHost: string, port: number): EgressDecision {
  const host = normaliseHost(rawHost);
  if (!host) return { allowed: false, reason: "not a valid host name" };
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { allowed: false, reason: "not a valid port" };
  if (listed(policy, host, port)) return { allowed: true, host, port };
  if (net.isIP(host)) return { allowed: false, reason: "an IP address, not a host on the allow-list" };
  if (policy.allow.some((entry) => entry.host === host)) {
    const ports = policy.allow.filter((entry) => entry.host === host).map((entry) => entry.port);
    return { allowed: false, reason: `port ${port} is not allowed for this host (only ${ports.join(", ")})` };
  }
  return { allowed: false, reason: "not on the allow-list" };
}

/**
 * After DNS: why a resolved address must not be used, or undefined when it may. Loopback, link-local (cloud
 * metadata), unspecified, multicast and this machine's own addresses would reach the host's services (Postgres, the
 * app, the engine) through an allowed name whose DNS says so; they are allowed only when the operator lists the
 * address itself with this port. Private ranges (10/8, 192.168/16, …) are allowed: an operator's private registry
 * lives there, and only names the operator listed resolve to anything.
 */
export function refuseAddress(policy: EgressPolicy, address: string, port: number): string | undefined {
  const normalised = normaliseHost(address) ?? address;
  if (listed(policy, normalised, port)) return undefined;
  const kind = specialAddressKind(normalised);
  return kind ? `resolves to ${normalised}, ${kind}` : undefined;
}

/** "a loopback address", … for addresses that reach this machine or its link; undefined for ordinary ones. */
export function specialAddressKind(address: string): string | undefined {
  const v4 = ipv4Of(address);
  if (v4) {
    const [a = 0, b = 0] = v4;
    if (a === 127) return "a loopback address";
    if (a === 0) return "an unspecified address";
    if (a === 169 && b === 254) return "a link-local address";
    if (a >= 224) return "a multicast or reserved address";
  } else if (net.isIPv6(address)) {
    const v6 = address.toLowerCase();
    if (v6 === "::1") return "a loopback address";
    if (v6 === "::") return "an unspecified address";
    if (/^fe[89ab]/.test(v6)) return "a link-local address";
    if (v6.startsWith("ff")) return "a multicast address";
  }
  if (ownAddresses().has(v4 ? v4.join(".") : address.toLowerCase())) return "an address of this machine";
  return undefined;
}

/** The four numbers of an IPv4 address, also when written as IPv4-mapped IPv6 (::ffff:127.0.0.1). */
function ipv4Of(address: string): number[] | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const text = mapped?.[1] ?? address;
  if (!net.isIPv4(text)) {
    // ::ffff:7f00:1 (hex form) as well.
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
    if (!hex?.[1] || !hex[2]) return undefined;
    const high = parseInt(hex[1], 16);
    const low = parseInt(hex[2], 16);
    return [high >> 8, high & 255, low >> 8, low & 255];
  }
  return text.split(".").map(Number);
}

let ownCache: { at: number; set: Set<string> } | undefined;

/** This machine's interface addresses, re-read at most every 30 s (interfaces come and go). */
function ownAddresses(): Set<string> {
  const now = Date.now();
  if (ownCache && now - ownCache.at < 30_000) return ownCache.set;
  const set = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const info of list ?? []) set.add(info.address.toLowerCase().replace(/%.*$/, ""));
  }
  ownCache = { at: now, set };
  return set;
}
