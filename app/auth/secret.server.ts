/**
 * The secret that signs session cookies and preview links. Production must
 * set SESSION_SECRET (env.server.ts refuses to start without it); in
 * development one is generated once and kept in DYNO_DATA_DIR, so a restart
 * does not sign everyone out.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { env } from "../env.server";

let cached: string | undefined;

export function sessionSecret(): string {
  if (cached) return cached;
  const { SESSION_SECRET, DYNO_DATA_DIR } = env();
  if (SESSION_SECRET) return (cached = SESSION_SECRET);
  const file = path.resolve(DYNO_DATA_DIR, "session-secret");
  try {
    cached = readFileSync(file, "utf8").trim();
  } catch {
    cached = "";
  }
  if (cached.length < 32) {
    cached = randomBytes(32).toString("base64url");
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${cached}\n`, { mode: 0o600 });
  }
  return cached;
}
