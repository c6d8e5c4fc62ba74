/**
 * Request bodies are bounded before anything parses them (server/body-limit.ts):
 * the app runs as a process of its own, so its memory can be read from
 * /proc, and takes huge posts, declared (Content-Length) and chunked, with
 * no session. Each is answered 413 without the app's memory growing, and
 * nothing a visitor posts is echoed back whole.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import getPort from "get-port";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAppProcess, type AppProcess } from "../support/app-process";
import { reserveTestDatabase, type ReservedDatabase } from "../support/database";

const MiB = 1024 * 1024;

let reserved: ReservedDatabase;
let dataDir: string;
let app: AppProcess;

beforeAll(async () => {
  reserved = await reserveTestDatabase();
  dataDir = reserved.env.DYNO_DATA_DIR ?? mkdtempSync(path.join(os.tmpdir(), "dyno-http-bodies-"));
  app = await startAppProcess({
    ...reserved.env,
    DYNO_DATA_DIR: dataDir,
    PORT: "0",
    PREVIEW_PORT: String(await getPort()),
    INNGEST_DEV: "1",
    NO_PROXY: "127.0.0.1,localhost",
  });
}, 120_000);

afterAll(async () => {
  await app?.kill();
  await reserved?.release();
  if (!reserved?.env.DYNO_DATA_DIR && dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A form body of exactly `bytes` bytes ("email=aaaa…"), made as it is sent: one 64 KiB buffer, reused. */
function hugeForm(bytes: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, "a");
  let sent = 0;
  return new Readable({
    read() {
      if (sent === 0) {
        sent += 6;
        return void this.push("email=");
      }
      if (sent >= bytes) return void this.push(null);
      const part = Math.min(chunk.length, bytes - sent);
      sent += part;
      this.push(part === chunk.length ? chunk : chunk.subarray(0, part));
    },
  });
}

interface PostOutcome {
  status?: number;
  body: string;
  /** The connection ended before the whole body went out (the app closed it after answering). */
  cutOff: boolean;
}

/** POSTs a streamed body; resolves with the answer once the exchange is over, however the connection ends. */
function postStream(
  pathname: string,
  body: Readable,
  { declaredLength }: { declaredLength?: number },
): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const url = new URL(pathname, app.url);
    const outcome: PostOutcome = { body: "", cutOff: false };
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      body.destroy();
      resolve(outcome);
    };
    const req = httpRequest(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        ...(declaredLength !== undefined
          ? { "Content-Length": String(declaredLength) }
          : { "Transfer-Encoding": "chunked" }),
      },
    });
    req.on("response", (res) => {
      outcome.status = res.statusCode;
      res.setEncoding("utf8");
      // Only the start is kept: an app that echoes the post back would answer with hundreds of MB.
      res.on("data", (text: string) => (outcome.body = (outcome.body + text).slice(0, 64 * 1024)));
      res.on("end", settle);
      res.on("error", settle);
      res.on("close", settle);
    });
    req.on("error", () => {
      outcome.cutOff = true;
      // Give a response already on its way a moment to be read.
      setTimeout(settle, 200);
    });
    body.pipe(req);
  });
}

function memoryOf(pid: number): { rssKiB: number; peakKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rssKiB: field("VmRSS"), peakKiB: field("VmHWM") };
}

/** Resets the process's peak RSS (VmHWM) to its current RSS; false where the kernel does not allow it. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

describe("request body limits", () => {
  it("answers five concurrent 100 MB posts to /login, declared and chunked, with 413 while the app's memory stays flat", async () => {
    const pid = app.child.pid!;
    // Warm up: the first requests compile the routes (Vite) and open the database.
    for (let i = 0; i < 3; i++) {
      const warm = await fetch(`${app.url}/login`, {
        method: "POST",
        body: new URLSearchParams({ email: "a@example.test", password: "wrong password" }),
      });
      await warm.text();
    }
    const before = memoryOf(pid);
    const peakWasReset = resetPeak(pid);
    let sampledPeakKiB = before.rssKiB;
    const sampler = setInterval(() => (sampledPeakKiB = Math.max(sampledPeakKiB, memoryOf(pid).rssKiB)), 20);

    const size = 100 * MiB;
    const outcomes = await Promise.all([
      ...Array.from({ length: 5 }, () => postStream("/login", hugeForm(size), { declaredLength: size })),
      ...Array.from({ length: 5 }, () => postStream("/login", hugeForm(size), {})),
    ]);
    clearInterval(sampler);
    const after = memoryOf(pid);

    for (const outcome of outcomes) {
      expect(outcome.status, JSON.stringify(outcome)).toBe(413);
      expect(outcome.body).toMatch(/^Request body too large \(at most 64 KiB\)$/);
    }
    const peakKiB = Math.max(sampledPeakKiB, peakWasReset ? after.peakKiB : 0);
    const growthMiB = (peakKiB - before.rssKiB) / 1024;
    console.log(
      `[http-bodies] rss before ${before.rssKiB >> 10} MiB, peak during ${peakKiB >> 10} MiB, after ${after.rssKiB >> 10} MiB`,
    );
    // One 100 MB body held in memory would be far past this; ten bodies were sent.
    expect(growthMiB).toBeLessThan(64);

    // The app is still answering.
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  }, 180_000);

  it("gives each route its limit: the builder's form takes a 20,000-character prompt, the engine's calls a few MiB", async () => {
    const prompt = "é".repeat(20_000); // 2 bytes in UTF-8, 6 URL-encoded: 120 KB
    const builder = await fetch(`${app.url}/projects/${randomUUID()}`, {
      method: "POST",
      body: new URLSearchParams({ prompt }),
      redirect: "manual",
    });
    await builder.text();
    // Past the body limit: no session, so sign-in is asked for.
    expect(builder.status).toBe(302);
    const login = await fetch(`${app.url}/login`, { method: "POST", body: new URLSearchParams({ prompt }) });
    expect(login.status).toBe(413);
    expect(await login.text()).toBe("Request body too large (at most 64 KiB)");

    const tooBigForBuilder = await fetch(`${app.url}/projects/${randomUUID()}`, {
      method: "POST",
      body: new URLSearchParams({ prompt: "a".repeat(300 * 1024) }),
    });
    expect(tooBigForBuilder.status).toBe(413);
    expect(await tooBigForBuilder.text()).toBe("Request body too large (at most 256 KiB)");

    const engineSized = await postStream("/api/inngest", hugeForm(3 * MiB), { declaredLength: 3 * MiB });
    expect(engineSized.status).not.toBe(413);
    const pastEngine = await postStream("/api/inngest", hugeForm(9 * MiB), {});
    expect(pastEngine.status).toBe(413);
    expect(pastEngine.body).toBe("Request body too large (at most 8 MiB)");
  }, 60_000);

  it("never echoes more of a posted email than an email can be", async () => {
    const email = `${"x".repeat(60 * 1024)}@example.test`;
    const response = await fetch(`${app.url}/signup`, {
      method: "POST",
      body: new URLSearchParams({ email, password: "short" }),
    });
    expect(response.status).toBe(400);
    const page = await response.text();
    expect(page).toContain("That email address is too long.");
    expect(page).not.toContain("x".repeat(255));
    expect(page.length).toBeLessThan(40 * 1024);
  }, 60_000);
});
