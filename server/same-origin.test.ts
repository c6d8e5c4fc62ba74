import { describe, expect, it } from "vitest";
import { crossOriginRefusal } from "./same-origin";

const post = (headers: Record<string, string>, protocol = "http") => ({
  method: "POST",
  protocol,
  headers: { host: "dyno.example.test:3000", ...headers },
});

describe("crossOriginRefusal", () => {
  it("compares the whole origin with the request's own scheme and Host when APP_ORIGIN is unset", () => {
    expect(crossOriginRefusal(post({ origin: "http://dyno.example.test:3000" }), undefined)).toBeNull();
    expect(crossOriginRefusal(post({ origin: "https://dyno.example.test:3000" }), undefined)).toBe(
      "Origin: https://dyno.example.test:3000",
    );
    expect(crossOriginRefusal(post({ origin: "http://dyno.example.test:3001" }), undefined)).not.toBeNull();
    expect(crossOriginRefusal(post({ origin: "http://evil.example" }), undefined)).not.toBeNull();
    expect(crossOriginRefusal(post({ origin: "null" }), undefined)).not.toBeNull();
  });

  it("takes APP_ORIGIN as the only origin when set, whatever Host the request names", () => {
    const configured = "https://dyno.example.test";
    expect(
      crossOriginRefusal(post({ origin: "https://dyno.example.test", host: "10.0.0.5:3000" }), configured),
    ).toBeNull();
    // Behind a TLS-terminating proxy the socket is plain http: the derived origin would be wrong, APP_ORIGIN is not.
    expect(crossOriginRefusal(post({ origin: "http://dyno.example.test:3000" }), configured)).not.toBeNull();
    expect(crossOriginRefusal(post({ origin: "http://dyno.example.test" }), configured)).not.toBeNull();
  });

  it("refuses what fetch metadata marks cross-site or same-site, with or without Origin", () => {
    for (const site of ["cross-site", "same-site"]) {
      expect(crossOriginRefusal(post({ "sec-fetch-site": site }), undefined)).toBe(`Sec-Fetch-Site: ${site}`);
      expect(
        crossOriginRefusal(post({ "sec-fetch-site": site, origin: "http://dyno.example.test:3000" }), undefined),
      ).not.toBeNull();
    }
    expect(
      crossOriginRefusal(post({ "sec-fetch-site": "same-origin", origin: "http://dyno.example.test:3000" }), undefined),
    ).toBeNull();
    expect(crossOriginRefusal(post({ "sec-fetch-site": "none" }), undefined)).toBeNull();
  });

  it("lets non-browser clients (no Origin, no fetch metadata) and reads through", () => {
    expect(crossOriginRefusal(post({}), undefined)).toBeNull();
    for (const method of ["GET", "HEAD", "OPTIONS"]) {
      expect(
        crossOriginRefusal(
          { ...post({ origin: "http://evil.example", "sec-fetch-site": "cross-site" }), method },
          undefined,
        ),
      ).toBeNull();
    }
    for (const method of ["PUT", "PATCH", "DELETE"]) {
      expect(crossOriginRefusal({ ...post({ origin: "http://evil.example" }), method }, undefined)).not.toBeNull();
    }
  });
});
