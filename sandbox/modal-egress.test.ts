import { describe, expect, it } from "vitest";
import { DEFAULT_MODAL_REGISTRY, modalBoxEnv, modalNetworkParams } from "./modal-egress";
import { SandboxUnavailableError } from "./types";

describe("SANDBOX_EGRESS on the Modal provider", () => {
  it("off blocks every outbound connection", () => {
    expect(modalNetworkParams({ mode: "off" })).toEqual({ blockNetwork: true });
  });

  it("registry allows the registry's host by name and nothing by address", () => {
    expect(modalNetworkParams({ mode: "registry" })).toEqual({
      outboundDomainAllowlist: ["registry.npmjs.org"],
      outboundCidrAllowlist: [],
    });
  });

  it("adds the extra allow-list: hosts (port 443 only) by name, IPv4 addresses and CIDRs by address", () => {
    expect(
      modalNetworkParams({
        mode: "registry",
        registry: "https://npm.example.com/repository/npm/",
        allow: ["Files.PythonHosted.org.", "pypi.org:443", "203.0.113.7", "198.51.100.0/24", " ", "pypi.org"],
      }),
    ).toEqual({
      outboundDomainAllowlist: ["npm.example.com", "files.pythonhosted.org", "pypi.org"],
      outboundCidrAllowlist: ["203.0.113.7/32", "198.51.100.0/24"],
    });
  });

  it.each([
    [{ registry: "http://registry.example.com/" }, /https on port 443/],
    [{ registry: "https://registry.example.com:8443/" }, /https on port 443/],
    [{ registry: "https://user:secret@registry.example.com/" }, /credentials/],
    [{ registry: "not a url" }, /not a URL/],
    [{ allow: ["git.example.com:22"] }, /port 443 \(TLS\) only/],
    [{ allow: ["*.example.com"] }, /wildcards are not taken/],
    [{ allow: ["10.0.0.0/4"] }, /wider than \/8/],
    [{ allow: ["300.1.1.1/24"] }, /not an IPv4 CIDR/],
    [{ allow: ["[::1]:443"] }, /IPv6/],
    [{ allow: ["exa mple.com"] }, /not a host/],
    [{ allow: Array.from({ length: 65 }, (_, i) => `h${i}.example.com`) }, /at most 64/],
  ])("refuses what Modal cannot express rather than widening it: %j", (policy, message) => {
    const attempt = () => modalNetworkParams({ mode: "registry", ...policy });
    expect(attempt).toThrow(SandboxUnavailableError);
    expect(attempt).toThrow(message);
  });

  it("refuses an unknown mode", () => {
    expect(() => modalNetworkParams({ mode: "open" as "off" })).toThrow(/registry or off/);
  });

  it("points the box's npm at the allowed registry", () => {
    expect(modalBoxEnv({ mode: "registry" })).toMatchObject({
      npm_config_registry: DEFAULT_MODAL_REGISTRY,
      npm_config_update_notifier: "false",
    });
    expect(modalBoxEnv({ mode: "off", registry: "https://npm.example.com/r" }).npm_config_registry).toBe(
      "https://npm.example.com/r",
    );
  });
});
