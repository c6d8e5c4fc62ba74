import { describe, expect, it } from "vitest";
import { classifyAddress, parseWebhookUrl, resolveWebhookTarget, WebhookUrlError, type Resolver } from "./address";

/** What the URL parser makes of a host, then what the check says: the path every webhook URL takes. */
const classOfUrlHost = (url: string) => classifyAddress(new URL(url).hostname.replace(/^\[|\]$/g, "")).class;

describe("classifyAddress", () => {
  it("refuses loopback, private, link-local, CGNAT and the other non-public IPv4 ranges", () => {
    for (const address of [
      "127.0.0.1",
      "127.255.255.254",
      "10.0.0.1",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "100.127.255.255",
      "198.18.0.1",
    ]) {
      expect([address, classifyAddress(address).class]).toEqual([address, "private"]);
    }
    for (const address of ["0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1"]) {
      expect([address, classifyAddress(address).class]).toEqual([address, "never"]);
    }
  });

  it("lets public IPv4 addresses through, including the neighbours of the refused ranges", () => {
    for (const address of [
      "8.8.8.8",
      "1.1.1.1",
      "172.15.255.255",
      "172.32.0.0",
      "100.63.255.255",
      "100.128.0.0",
      "11.0.0.1",
      "192.169.0.1",
    ]) {
      expect([address, classifyAddress(address).class]).toEqual([address, "public"]);
    }
  });

  it("refuses IPv6 loopback, unspecified, link-local, unique-local and multicast", () => {
    expect(classifyAddress("::1")).toMatchObject({ class: "private", range: "loopback (::1)" });
    expect(classifyAddress("0:0:0:0:0:0:0:1").class).toBe("private");
    expect(classifyAddress("::").class).toBe("never");
    expect(classifyAddress("fe80::1").class).toBe("private");
    expect(classifyAddress("fe80::1%eth0").class).toBe("private");
    expect(classifyAddress("fc00::1").class).toBe("private");
    expect(classifyAddress("fd12:3456:789a::1").class).toBe("private");
    expect(classifyAddress("ff02::1").class).toBe("never");
    expect(classifyAddress("2606:4700:4700::1111").class).toBe("public");
  });

  it("judges IPv6 forms that carry an IPv4 address by that address (mapped, compatible, NAT64, 6to4)", () => {
    expect(classifyAddress("::ffff:127.0.0.1")).toMatchObject({ class: "private" });
    expect(classifyAddress("::ffff:7f00:1").class).toBe("private");
    expect(classifyAddress("0:0:0:0:0:ffff:a00:1").class).toBe("private"); // 10.0.0.1
    expect(classifyAddress("::ffff:169.254.169.254").range).toMatch(/link-local.*inside an IPv6 address/);
    expect(classifyAddress("::127.0.0.1").class).toBe("private");
    expect(classifyAddress("64:ff9b::10.1.2.3").class).toBe("private");
    expect(classifyAddress("2002:7f00:1::").class).toBe("private");
    expect(classifyAddress("2002:c0a8:101::1").class).toBe("private"); // 192.168.1.1
    expect(classifyAddress("::ffff:8.8.8.8").class).toBe("public");
    expect(classifyAddress("2002:808:808::1").class).toBe("public");
  });

  it("sees through the decimal, octal, hexadecimal and short IPv4 forms a URL may use", () => {
    for (const url of [
      "http://2130706433/", // 127.0.0.1 as one decimal number
      "http://017700000001/", // octal
      "http://0x7f000001/", // hexadecimal
      "http://0x7f.1/",
      "http://127.1/",
      "http://0177.0.0.01/",
      "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:7f00:1]/",
      "http://[0:0:0:0:0:ffff:127.0.0.1]/",
      "http://3232235777/", // 192.168.1.1
      "http://0xa9.0xfe.0xa9.0xfe/", // 169.254.169.254
    ]) {
      expect([url, classOfUrlHost(url)]).toEqual([url, "private"]);
    }
    expect(classOfUrlHost("http://0/")).toBe("never");
    expect(classOfUrlHost("http://134744072/")).toBe("public"); // 8.8.8.8
  });

  it("treats what is not an address as nothing to connect to", () => {
    expect(classifyAddress("localhost").class).toBe("never");
    expect(classifyAddress("1.2.3").class).toBe("never");
    expect(classifyAddress("256.1.1.1").class).toBe("never");
  });
});

describe("parseWebhookUrl", () => {
  it("takes http and https URLs without credentials, and says what is wrong with the rest", () => {
    expect(parseWebhookUrl(" https://hooks.example.com/dyno ").href).toBe("https://hooks.example.com/dyno");
    expect(() => parseWebhookUrl("")).toThrow(/Enter the URL/);
    expect(() => parseWebhookUrl("hooks.example.com")).toThrow(/not a URL/);
    expect(() => parseWebhookUrl("ftp://hooks.example.com/")).toThrow(/https:\/\//);
    expect(() => parseWebhookUrl("file:///etc/passwd")).toThrow(/https:\/\//);
    expect(() => parseWebhookUrl("https://user:pw@hooks.example.com/")).toThrow(/credentials/);
    expect(() => parseWebhookUrl(`https://example.com/${"a".repeat(2_000)}`)).toThrow(/longer than 2000/);
  });
});

describe("resolveWebhookTarget", () => {
  const resolver =
    (answers: Record<string, string[]>): Resolver =>
    (host) => {
      const addresses = answers[host];
      if (!addresses) return Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
      return Promise.resolve(addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })));
    };

  it("pins the address it checked", async () => {
    const target = await resolveWebhookTarget(new URL("https://hooks.example.com/x"), {
      allowPrivate: false,
      resolve: resolver({ "hooks.example.com": ["93.184.216.34"] }),
    });
    expect(target).toMatchObject({ address: "93.184.216.34", family: 4 });
  });

  it("refuses a name with any private address among its answers, and says how an operator allows it", async () => {
    const resolve = resolver({ "mixed.example.com": ["93.184.216.34", "10.0.0.5"], "v6.example.com": ["::1"] });
    await expect(
      resolveWebhookTarget(new URL("https://mixed.example.com/"), { allowPrivate: false, resolve }),
    ).rejects.toThrow(/mixed\.example\.com \(10\.0\.0\.5\).*private \(10\.0\.0\.0\/8\).*WEBHOOK_ALLOW_PRIVATE=1/);
    await expect(
      resolveWebhookTarget(new URL("http://v6.example.com/"), { allowPrivate: false, resolve }),
    ).rejects.toThrow(WebhookUrlError);
    await expect(
      resolveWebhookTarget(new URL("http://v6.example.com/"), { allowPrivate: true, resolve }),
    ).resolves.toMatchObject({ address: "::1", family: 6 });
  });

  it("refuses loopback literals through the system resolver, unless private targets are allowed", async () => {
    await expect(resolveWebhookTarget(new URL("http://127.0.0.1:9/"), { allowPrivate: false })).rejects.toThrow(
      /loopback/,
    );
    await expect(resolveWebhookTarget(new URL("http://[::1]:9/"), { allowPrivate: false })).rejects.toThrow(/loopback/);
    await expect(resolveWebhookTarget(new URL("http://localhost:9/"), { allowPrivate: false })).rejects.toThrow(
      /localhost \((127\.0\.0\.1|::1)\).*loopback/,
    );
    await expect(resolveWebhookTarget(new URL("http://127.0.0.1:9/"), { allowPrivate: true })).resolves.toMatchObject({
      address: "127.0.0.1",
    });
  });

  it("never allows multicast or unspecified addresses, even with private targets allowed", async () => {
    await expect(resolveWebhookTarget(new URL("http://0.0.0.0/"), { allowPrivate: true })).rejects.toThrow(
      /unspecified/,
    );
    await expect(resolveWebhookTarget(new URL("http://224.0.0.1/"), { allowPrivate: true })).rejects.toThrow(
      /multicast/,
    );
  });

  it("says so when the host cannot be found", async () => {
    await expect(
      resolveWebhookTarget(new URL("https://nowhere.example/"), { allowPrivate: false, resolve: resolver({}) }),
    ).rejects.toThrow(/could not be found/);
  });
});
