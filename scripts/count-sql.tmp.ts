// Throwaway (not committed): counts SQL statements per iteration of the inline agent loop.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import { startReplayServer } from "../model-replay/server";

const ITER = 20;
const base = process.env.DATABASE_URL!;
const admin = postgres(base, { max: 1, onnotice: () => {} });
const name = `dyno_count_${process.pid}`;
await admin.unsafe(`create database "${name}"`);
const url = new URL(base); url.pathname = `/${name}`;
const replay = await startReplayServer({ scripts: [], host: "127.0.0.1", port: 0 });
const turns: any[] = [];
for (let i = 1; i < ITER; i++) turns.push({ reply: i % 5 === 0 ? { tool: "run_command", command: `wc -c page-${i - 1}.html` } : i % 2 === 0 ? { tool: "read_file", path: `page-${i - 1}.html` } : { tool: "write_file", path: `page-${i}.html`, content: "<h1>x</h1>\n" } });
turns.push({ reply: { tool: "reply_to_user", message: "done" } });
replay.addScript({ name: "s", turns });
Object.assign(process.env, { DATABASE_URL: url.toString(), DYNO_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), "cnt-")), AGENT_BASE_URL: replay.url, BAML_LOG: "warn", INNGEST_DEV: "1" });
const schema = await import("../db/schema");
let counting = false; const stmts = new Map<string, number>();
const sql = postgres(url.toString(), { max: 10, onnotice: () => {}, idle_timeout: 0, debug: (_c: number, q: string) => { if (!counting) return; const k = q.replace(/\s+/g, " ").slice(0, 110); stmts.set(k, (stmts.get(k) ?? 0) + 1); } });
const db = drizzle(sql, { schema });
await migrate(drizzle(sql), { migrationsFolder: "db/migrations" });
(globalThis as any).__dynoDatabase = { db, driver: "postgres", async listen(ch: string, on: any, onl: any) { const { unlisten } = await sql.listen(ch, on, onl); return unlisten; }, migrate: async () => {}, close: () => sql.end() };
const { recordPrompt } = await import("../app/models/runs.server");
const { createAgentContext } = await import("../inngest/agent/context");
const { runAgentLoop } = await import("../inngest/agent/loop");
const agent = createAgentContext();
const [user] = await db.insert(schema.users).values({ email: `c${process.pid}@x.test`, passwordHash: "!" }).returning();
for (const label of ["warm", "measured"]) {
  const [project] = await db.insert(schema.projects).values({ userId: user!.id, title: "T" }).returning();
  const run = await recordPrompt(db as any, { userId: user!.id, projectId: project!.id, input: { prompt: "go" }, model: "openai-compatible/s" });
  counting = label === "measured";
  await runAgentLoop(agent, run.id, async (_id, fn) => fn());
  counting = false;
}
const total = [...stmts.values()].reduce((a, b) => a + b, 0);
console.log(`total ${total} statements, ${(total / ITER).toFixed(1)} per iteration`);
for (const [k, n] of [...stmts].sort((a, b) => b[1] - a[1])) console.log(String(n).padStart(5), k);
await sql.end(); await replay.close(); await admin.unsafe(`drop database "${name}" with (force)`); await admin.end();
process.exit(0);
