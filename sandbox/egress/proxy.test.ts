import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressRefusal } from "../types";
import { createEgressPolicy, parseAllowList } from "./policy";
import { parseConnectTarget, startEgressProxy, type EgressProxy } from "./proxy";

/** Stands for any host service (the app, the engine, a registry): records what reaches it. */
let upstream: http.Server;
let upstreamPort: number;
const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders }[] = [];
let folder: string;
let proxy: EgressProxy;
const heard: EgressRefusal[] = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    res.end(`hello from upstream ${req.url}`);
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  upstreamPort = (upstream.address() as AddressInfo).port;
  folder = await mkdtemp(path.join(os.tmpdir(), "dyno-egress-proxy-"));
  proxy = await startEgressProxy({
    socketPath: path.join(folder, "egress.sock"),
    policy: createEgressPolicy("https://registry.npmjs.org/", parseAllowList(`127.0.0.1:${upstreamPort}`)),
    // Stands for DNS answers a hostile or broken resolver could give; the checks after resolving are what is tested.
    lookup: async (host) => {
      if (host === "rebind.test") return [{ address: "127.0.0.1", family: 4 }];
      if (host === "mixed.test")
        return [
          { address: "93.184.215.14", family: 4 },
          { address: "::1", family: 6 },
        ];
      if (host === "metadata.test") return [{ address: "169.254.169.254", family: 4 }];
      throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    },
  });
  proxy.onRefusal((refusal) => heard.push(refusal));
});

afterAll(async () => {
  await proxy?.close();
  await new Promise((resolve) => upstream?.close(resolve));
  await rm(folder, { recursive: true, force: true });
});

/** Sends raw bytes to the proxy; resolves with everything it answers until it closes (or `until` matches). */
function talk(payload: string, until?: RegExp): Promise<{ text: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxy.socketPath);
    let text = "";
    const done = () => resolve({ text, socket });
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
      if (until?.test(text)) done();
    });
    socket.on("end", done);
    socket.on("close", done);
    socket.on("error", reject);
    socket.write(payload);
  });
}

describe("egress proxy", () => {
  it("tunnels CONNECT to an allowed host:port", async () => {
    const { text, socket } = await talk(`CONNECT 127.0.0.1:${upstreamPort} HTTP/1.1\r\nHost: x\r\n\r\n`, /\r\n\r\n/);
    expect(text).toMatch(/^HTTP\/1.1 200/);
    const reply = await new Promise<string>((resolve) => {
      let body = "";
      socket.on("data", (chunk: string) => {
        body += chunk;
        if (body.includes("hello from upstream")) resolve(body);
      });
      socket.write(`GET /through-tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
    expect(reply).toMatch(/hello from upstream \/through-tunnel/);
    socket.destroy();
  });

  it("refuses hosts not on the list, records why, and tells listeners", async () => {
    const before = proxy.seq;
    const { text } = await talk("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    expect(text).toMatch(/^HTTP\/1.1 403/);
    expect(text).toMatch(/refused example.com:443 \(not on the allow-list\)/);
    expect(text).toMatch(/may reach only: registry.npmjs.org:443/);
    const refused = proxy.refusalsSince(before);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ host: "example.com", port: 443, reason: "not on the allow-list" });
    expect(Date.parse(refused[0]!.at)).not.toBeNaN();
    expect(heard.at(-1)).toMatchObject({ host: "example.com", port: 443 });
  });

  it("refuses hostile CONNECTs: an IP, the registry on another port, host services, DNS tricks", async () => {
    const cases: [string, RegExp][] = [
      ["104.16.0.35:443", /an IP address/],
      ["registry.npmjs.org:80", /port 80 is not allowed/],
      ["registry.npmjs.org.:22", /port 22 is not allowed/],
      ["127.0.0.1:5432", /an IP address/],
      ["127.0.0.1:6379", /an IP address/],
      [`[::1]:${upstreamPort}`, /an IP address/],
      [`[::ffff:127.0.0.1]:${upstreamPort}`, /an IP address/],
      ["localhost:5432", /not on the allow-list/],
      ["registry.npmjs.org.evil.example:443", /not on the allow-list/],
    ];
    for (const [target, reason] of cases) {
      const { text } = await talk(`CONNECT ${target} HTTP/1.1\r\nHost: registry.npmjs.org:443\r\n\r\n`);
      expect(text, target).toMatch(/^HTTP\/1.1 403/);
      expect(text, target).toMatch(reason);
    }
    expect(seen.filter((request) => request.url !== "/through-tunnel")).toHaveLength(0);
  });

  it("checks the addresses a listed name resolves to (rebinding to loopback, metadata, mixed answers)", async () => {
    proxy.setPolicy(
      createEgressPolicy(
        "https://registry.npmjs.org/",
        parseAllowList(
          `127.0.0.1:${upstreamPort},rebind.test:${upstreamPort},mixed.test:${upstreamPort},metadata.test:80`,
        ),
      ),
    );
    const before = proxy.seq;
    const rebind = await talk(`CONNECT rebind.test:${upstreamPort} HTTP/1.1\r\nHost: x\r\n\r\n`, /\r\n\r\n/);
    // 127.0.0.1 with this port is itself listed, so the name may use it: the operator allowed that address.
    expect(rebind.text).toMatch(/^HTTP\/1.1 200/);
    rebind.socket.destroy();
    const mixed = await talk(`CONNECT mixed.test:${upstreamPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(mixed.text).toMatch(/^HTTP\/1.1 403.*[\s\S]*resolves to ::1, a loopback address/);
    const metadata = await talk("CONNECT metadata.test:80 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(metadata.text).toMatch(/resolves to 169.254.169.254, a link-local address/);
    expect(proxy.refusalsSince(before).map((r) => r.host)).toEqual(["mixed.test", "metadata.test"]);

    proxy.setPolicy(createEgressPolicy("https://registry.npmjs.org/", parseAllowList(`rebind.test:${upstreamPort}`)));
    const unlisted = await talk(`CONNECT rebind.test:${upstreamPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(unlisted.text).toMatch(/resolves to 127.0.0.1, a loopback address/);
    proxy.setPolicy(createEgressPolicy("https://registry.npmjs.org/", parseAllowList(`127.0.0.1:${upstreamPort}`)));
  });

  it("refuses a listed name whose real DNS answer is loopback (localhost)", async () => {
    const real = await startEgressProxy({
      socketPath: path.join(folder, "real-dns.sock"),
      policy: createEgressPolicy("https://registry.npmjs.org/", parseAllowList(`localhost:${upstreamPort}`)),
    });
    try {
      const text = await new Promise<string>((resolve) => {
        const socket = net.connect(real.socketPath, () =>
          socket.write(`CONNECT localhost:${upstreamPort} HTTP/1.1\r\nHost: x\r\n\r\n`),
        );
        let answer = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => (answer += chunk));
        socket.on("close", () => resolve(answer));
      });
      expect(text).toMatch(/^HTTP\/1.1 403/);
      expect(text).toMatch(/resolves to (127\.0\.0\.1|::1), a loopback address/);
      expect(real.refusalsSince(0)).toMatchObject([{ host: "localhost", port: upstreamPort }]);
    } finally {
      await real.close();
    }
  });

  it("answers malformed CONNECT targets with 400", async () => {
    for (const target of ["example.com", "user@example.com:443", "http://example.com:443", "example.com:99999"]) {
      const { text } = await talk(`CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(text, target).toMatch(/^HTTP\/1.1 400/);
    }
  });

  it("forwards absolute-form HTTP to an allowed host: the request line decides, Host is rewritten, proxy auth dropped", async () => {
    seen.length = 0;
    const { text } = await talk(
      `GET http://127.0.0.1:${upstreamPort}/pkg?x=1 HTTP/1.1\r\nHost: evil.example\r\n` +
        "Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nX-Keep: yes\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\n\r\n",
      /hello from upstream/,
    );
    expect(text).toMatch(/^HTTP\/1.1 200/);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe("/pkg?x=1");
    expect(seen[0]!.headers.host).toBe(`127.0.0.1:${upstreamPort}`);
    expect(seen[0]!.headers["proxy-authorization"]).toBeUndefined();
    expect(seen[0]!.headers["proxy-connection"]).toBeUndefined();
    expect(seen[0]!.headers["x-drop"]).toBeUndefined();
    expect(seen[0]!.headers["x-keep"]).toBe("yes");
  });

  it("never lets the Host header pick the destination", async () => {
    seen.length = 0;
    const before = proxy.seq;
    const originForm = await talk(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${upstreamPort}\r\nConnection: close\r\n\r\n`);
    expect(originForm.text).toMatch(/^HTTP\/1.1 400/);
    const other = await talk(
      `GET http://example.com/ HTTP/1.1\r\nHost: 127.0.0.1:${upstreamPort}\r\nConnection: close\r\n\r\n`,
    );
    expect(other.text).toMatch(/^HTTP\/1.1 403/);
    expect(proxy.refusalsSince(before)).toMatchObject([{ host: "example.com", port: 80 }]);
    expect(seen).toHaveLength(0);
  });

  it("refuses request smuggling shapes before forwarding anything", async () => {
    seen.length = 0;
    const smuggled = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n";
    const both = await talk(
      `POST http://127.0.0.1:${upstreamPort}/a HTTP/1.1\r\nHost: x\r\nContent-Length: ${smuggled.length + 5}\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    );
    expect(both.text).toMatch(/^HTTP\/1.1 400/);
    const bareLf = await talk(`GET http://127.0.0.1:${upstreamPort}/b HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n`);
    expect(bareLf.text).toMatch(/^HTTP\/1.1 400/);
    const ftp = await talk("GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(ftp.text).toMatch(/^HTTP\/1.1 400/);
    expect(seen).toHaveLength(0);
  });

  it("keeps a bounded log of refusals", async () => {
    const small = await startEgressProxy({
      socketPath: path.join(folder, "small.sock"),
      policy: createEgressPolicy("https://registry.npmjs.org/"),
      maxRefusals: 3,
    });
    try {
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve) => {
          const socket = net.connect(small.socketPath, () =>
            socket.write(`CONNECT host${i}.example:443 HTTP/1.1\r\n\r\n`),
          );
          socket.on("close", () => resolve());
          socket.resume();
        });
      }
      expect(small.seq).toBe(5);
      expect(small.refusalsSince(0).map((r) => r.host)).toEqual(["host2.example", "host3.example", "host4.example"]);
    } finally {
      await small.close();
    }
  });

  it("parses CONNECT targets strictly", () => {
    expect(parseConnectTarget("registry.npmjs.org:443")).toEqual({ host: "registry.npmjs.org", port: 443 });
    expect(parseConnectTarget("[::1]:443")).toEqual({ host: "::1", port: 443 });
    expect(parseConnectTarget("a:b:443")).toBeUndefined();
    expect(parseConnectTarget("host:0")).toBeUndefined();
    expect(parseConnectTarget("host")).toBeUndefined();
  });
});
