import os from "node:os";
import { describe, expect, it } from "vitest";
import {
  checkTarget,
  createEgressPolicy,
  normaliseHost,
  parseAllowList,
  parseHostPort,
  refuseAddress,
  registryEntry,
} from "./policy";

const policy = createEgressPolicy(
  "https://registry.npmjs.org/",
  parseAllowList("pypi.org, files.pythonhosted.org,npm.corp.example:8443, 10.0.0.5:4873"),
);

describe("egress policy", () => {
  it("normalises host names: lower case, one trailing dot, IPv6 brackets", () => {
    expect(normaliseHost("Registry.NPMJS.org.")).toBe("registry.npmjs.org");
    expect(normaliseHost("registry.npmjs.org..")).toBeUndefined();
    expect(normaliseHost("[::1]")).toBe("::1");
    expect(normaliseHost("exa mple.com")).toBeUndefined();
    expect(normaliseHost("-bad.example")).toBeUndefined();
    expect(normaliseHost("a".repeat(64) + ".example")).toBeUndefined();
    expect(normaliseHost("")).toBeUndefined();
  });

  it("reads the allow-list: host or host:port, 443 by default, and names a bad item", () => {
    expect(parseAllowList("pypi.org, Example.com:8080,[::1]:4873,,")).toEqual([
      { host: "pypi.org", port: 443 },
      { host: "example.com", port: 8080 },
      { host: "::1", port: 4873 },
    ]);
    expect(parseAllowList(undefined)).toEqual([]);
    expect(() => parseAllowList("ok.example, https://bad.example")).toThrow(/"https:\/\/bad.example"/);
    expect(() => parseAllowList("host.example:70000")).toThrow(/not a host/);
    expect(parseHostPort("host.example:0")).toBeUndefined();
  });

  it("takes the registry's host and port from its URL", () => {
    expect(registryEntry("https://registry.npmjs.org/")).toEqual({ host: "registry.npmjs.org", port: 443 });
    expect(registryEntry("http://npm.corp.example:4873/npm/")).toEqual({ host: "npm.corp.example", port: 4873 });
    expect(() => registryEntry("ftp://x.example/")).toThrow(/not an http/);
  });

  it("never passes the host registry URL's credentials on", () => {
    const withAuth = createEgressPolicy("https://user:s3cret@npm.corp.example/npm/");
    expect(withAuth.registryUrl).toBe("https://npm.corp.example/npm/");
    expect(withAuth.allow).toEqual([{ host: "npm.corp.example", port: 443 }]);
  });

  it("allows exactly the listed host:port pairs", () => {
    expect(checkTarget(policy, "registry.npmjs.org", 443)).toMatchObject({ allowed: true });
    expect(checkTarget(policy, "REGISTRY.npmjs.org.", 443)).toMatchObject({
      allowed: true,
      host: "registry.npmjs.org",
    });
    expect(checkTarget(policy, "npm.corp.example", 8443)).toMatchObject({ allowed: true });
    expect(checkTarget(policy, "10.0.0.5", 4873)).toMatchObject({ allowed: true });
  });

  it("refuses other hosts, other ports, unlisted addresses and look-alikes, saying why", () => {
    expect(checkTarget(policy, "example.com", 443)).toEqual({ allowed: false, reason: "not on the allow-list" });
    expect(checkTarget(policy, "registry.npmjs.org", 80)).toEqual({
      allowed: false,
      reason: "port 80 is not allowed for this host (only 443)",
    });
    expect(checkTarget(policy, "registry.npmjs.org.evil.example", 443)).toMatchObject({ allowed: false });
    expect(checkTarget(policy, "evilregistry.npmjs.org", 443)).toMatchObject({ allowed: false });
    expect(checkTarget(policy, "104.16.0.35", 443)).toEqual({
      allowed: false,
      reason: "an IP address, not a host on the allow-list",
    });
    expect(checkTarget(policy, "::1", 443)).toMatchObject({ allowed: false });
    expect(checkTarget(policy, "10.0.0.5", 22)).toMatchObject({ allowed: false });
    expect(checkTarget(policy, "bad host", 443)).toEqual({ allowed: false, reason: "not a valid host name" });
    expect(checkTarget(policy, "registry.npmjs.org", 0)).toEqual({ allowed: false, reason: "not a valid port" });
  });

  it("refuses addresses that reach this machine or its link, in every spelling, unless listed", () => {
    for (const address of ["127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "0.0.0.0", "::"]) {
      expect(refuseAddress(policy, address, 443), address).toMatch(/loopback|unspecified/);
    }
    expect(refuseAddress(policy, "169.254.169.254", 443)).toMatch(/link-local/);
    expect(refuseAddress(policy, "fe80::1", 443)).toMatch(/link-local/);
    expect(refuseAddress(policy, "224.0.0.1", 443)).toMatch(/multicast/);
    expect(refuseAddress(policy, "104.16.0.35", 443)).toBeUndefined();
    // An operator's private registry: allowed once its name is listed.
    expect(refuseAddress(policy, "10.1.2.3", 443)).toBeUndefined();
    const local = createEgressPolicy("http://127.0.0.1:4873/");
    expect(refuseAddress(local, "127.0.0.1", 4873)).toBeUndefined();
    expect(refuseAddress(local, "127.0.0.1", 5432)).toMatch(/loopback/);
  });

  it("refuses this machine's own interface addresses", () => {
    const own = Object.values(os.networkInterfaces())
      .flat()
      .find((info) => info && !info.internal && info.family === "IPv4");
    if (!own) return; // a host with only loopback has nothing more to refuse
    expect(refuseAddress(policy, own.address, 443)).toMatch(/this machine/);
  });
});
