/**
 * SANDBOX_EGRESS on the Modal provider, mapped onto what Modal's SDK (0.11) offers when a sandbox is created
 * (docs/decisions/023-modal-app-process-and-egress.md):
 * - "off": blockNetwork, no outbound traffic at all (as on the local provider).
 * - "registry": outboundDomainAllowlist with the registry's host (plus SANDBOX_EGRESS_ALLOW), which Modal
 *   enforces outside the container on TLS connections to port 443 by server name; IPv4 addresses and CIDRs in the
 *   allow-list go to outboundCidrAllowlist, which admits any port and protocol to them.
 * Modal reports no refused connection, so ExecResult.egressRefused stays empty on this provider.
 */
import { isIP } from "node:net";
import { SandboxUnavailableError } from "./types";

export type SandboxEgress = "registry" | "off";

export interface ModalEgressPolicy {
  mode: SandboxEgress;
  /** The npm registry inside the box (npm_config_registry). Default https://registry.npmjs.org/. */
  registry?: string;
  /** More destinations (SANDBOX_EGRESS_ALLOW): "host", "host:443", an IPv4 address, or an IPv4 CIDR (/8 or longer). */
  allow?: readonly string[];
}

/** The subset of Modal's SandboxCreateParams this sets (same names, so it spreads into the create call). */
export interface ModalNetworkParams {
  blockNetwork?: boolean;
  outboundDomainAllowlist?: string[];
  outboundCidrAllowlist?: string[];
}

export const DEFAULT_MODAL_REGISTRY = "https://registry.npmjs.org/";
const MAX_ALLOW_ENTRIES = 64;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

function refuse(message: string): never {
  throw new SandboxUnavailableError(`Modal egress: ${message}`);
}

/** Where the box's npm fetches packages: the registry URL, checked to be one Modal's allow-list can admit. */
export function modalRegistry(policy: ModalEgressPolicy): URL {
  const text = policy.registry ?? DEFAULT_MODAL_REGISTRY;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return refuse(`the registry ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== "https:" || (url.port && url.port !== "443")) {
    refuse(
      `the registry must be https on port 443 (Modal's domain allow-list admits TLS to port 443 only), not ${url.origin}`,
    );
  }
  if (url.username || url.password) refuse("the registry URL must not carry credentials");
  return url;
}

function allowEntry(raw: string): { domain?: string; cidr?: string } {
  const entry = raw.trim().toLowerCase();
  const cidr = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(entry);
  if (cidr) {
    const bits = Number(cidr[2]);
    if (isIP(cidr[1]!) !== 4 || bits > 32) refuse(`${JSON.stringify(raw)} is not an IPv4 CIDR`);
    if (bits < 8) refuse(`${JSON.stringify(raw)} is wider than /8; allow narrower ranges`);
    return { cidr: entry };
  }
  if (isIP(entry) === 4) return { cidr: `${entry}/32` };
  if (isIP(entry.replace(/^\[|\]$/g, "")) === 6 || entry.startsWith("[")) {
    refuse(`${JSON.stringify(raw)}: IPv6 destinations are not supported on the Modal provider`);
  }
  const match = /^([^:]+)(?::(\d+))?$/.exec(entry);
  if (!match) refuse(`${JSON.stringify(raw)} is not a host, host:port, IPv4 address or CIDR`);
  const host = match[1]!.replace(/\.$/, "");
  if (match[2] !== undefined && match[2] !== "443") {
    refuse(`${JSON.stringify(raw)}: Modal's domain allow-list admits port 443 (TLS) only`);
  }
  if (!HOST_NAME.test(host)) {
    refuse(`${JSON.stringify(raw)} is not a host name (wildcards are not taken, as on the local provider)`);
  }
  return { domain: host };
}

/** The network options for a new sandbox under this policy. */
export function modalNetworkParams(policy: ModalEgressPolicy): ModalNetworkParams {
  if (policy.mode === "off") return { blockNetwork: true };
  if (policy.mode !== "registry") refuse(`unknown SANDBOX_EGRESS ${JSON.stringify(policy.mode)} (registry or off)`);
  const allow = policy.allow ?? [];
  if (allow.length > MAX_ALLOW_ENTRIES) refuse(`at most ${MAX_ALLOW_ENTRIES} allow-list entries, got ${allow.length}`);
  const registryHost = modalRegistry(policy).hostname.replace(/\.$/, "");
  const domains = new Set<string>();
  const cidrs = new Set<string>();
  for (const raw of [registryHost, ...allow]) {
    if (!raw.trim()) continue;
    const { domain, cidr } = allowEntry(raw);
    if (domain) domains.add(domain);
    if (cidr) cidrs.add(cidr);
  }
  // An empty outboundCidrAllowlist with a domain list means: nothing by address, only the listed names.
  return { outboundDomainAllowlist: [...domains], outboundCidrAllowlist: [...cidrs] };
}

/** Environment for every command and the app process in the box: npm uses the allowed registry, quietly. */
export function modalBoxEnv(policy: ModalEgressPolicy): Record<string, string> {
  return {
    npm_config_registry: modalRegistry(policy).href,
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
  };
}
