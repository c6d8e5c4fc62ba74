import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { describe, expect, it } from "vitest";
import { makeCspNonce, securityHeaders } from "./security-headers";

async function headersIn(mode: "development" | "production"): Promise<Headers> {
  const app = express();
  app.use(makeCspNonce, securityHeaders(mode));
  app.get("/", (_req, res) => void res.send("ok"));
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await response.text();
    return response.headers;
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("securityHeaders", () => {
  it("sends HSTS in production only", async () => {
    expect((await headersIn("production")).get("Strict-Transport-Security")).toMatch(/^max-age=31536000/);
    expect((await headersIn("development")).get("Strict-Transport-Security")).toBeNull();
  });

  it("lets the HMR socket connect in development only", async () => {
    expect((await headersIn("development")).get("Content-Security-Policy")).toMatch(/connect-src 'self' ws: wss:/);
    expect((await headersIn("production")).get("Content-Security-Policy")).toMatch(/connect-src 'self'(;|$)/);
  });

  it("refuses framing and names a fresh script nonce on each response", async () => {
    const [first, second] = [await headersIn("production"), await headersIn("production")];
    expect(first.get("X-Frame-Options")).toBe("DENY");
    expect(first.get("Content-Security-Policy")).toContain("frame-ancestors 'none'");
    const nonce = (h: Headers) =>
      /script-src 'self' 'nonce-([A-Za-z0-9+/=]{24})'/.exec(h.get("Content-Security-Policy") ?? "")?.[1];
    expect(nonce(first)).toBeTruthy();
    expect(nonce(first)).not.toBe(nonce(second));
  });
});
