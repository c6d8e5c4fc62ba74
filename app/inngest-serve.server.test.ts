import { afterEach, describe, expect, it } from "vitest";
import { inngestServeOrigin, ownSyncRequest, setListeningAddress } from "./inngest-serve.server";

afterEach(() => setListeningAddress(undefined));

describe("inngestServeOrigin", () => {
  it("is INNGEST_SERVE_ORIGIN when set, whatever the server listens on", () => {
    setListeningAddress({ host: "127.0.0.1", port: 4123 });
    expect(inngestServeOrigin({ INNGEST_SERVE_ORIGIN: "http://app:3000" })).toBe("http://app:3000");
  });

  it("is the listening address otherwise, a wildcard host as loopback, and unknown before listen", () => {
    expect(inngestServeOrigin({ INNGEST_SERVE_ORIGIN: undefined })).toBeUndefined();
    for (const [host, origin] of [
      ["127.0.0.1", "http://127.0.0.1:4123"],
      ["localhost", "http://localhost:4123"],
      ["0.0.0.0", "http://127.0.0.1:4123"],
      ["::", "http://[::1]:4123"],
      ["::1", "http://[::1]:4123"],
    ] as const) {
      setListeningAddress({ host, port: 4123 });
      expect(inngestServeOrigin({ INNGEST_SERVE_ORIGIN: undefined }), host).toBe(origin);
    }
  });
});

describe("ownSyncRequest", () => {
  it("keeps nothing of the sender's host, path or query but a deploy id, and syncs out of band", () => {
    const forged = new Request("http://evil.example:9999/api/inngest?probe=trust&fnId=x&deployId=d-1", {
      method: "PUT",
      headers: { host: "evil.example:9999", "x-inngest-sync-kind": "in_band", "x-inngest-signature": "s" },
    });
    const own = ownSyncRequest(forged, "http://127.0.0.1:3000");
    expect(own.method).toBe("PUT");
    expect(own.url).toBe("http://127.0.0.1:3000/api/inngest?deployId=d-1");
    expect(own.headers.get("host")).toBe("127.0.0.1:3000");
    expect(own.headers.get("x-inngest-sync-kind")).toBeNull();
    expect(own.headers.get("x-inngest-signature")).toBe("s");
    expect(ownSyncRequest(new Request("http://x/api/inngest", { method: "PUT" }), "https://dyno.example.com").url).toBe(
      "https://dyno.example.com/api/inngest",
    );
  });
});
