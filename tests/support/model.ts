/**
 * The model stand-in for integration tests: one replay server per test file,
 * scripts added per test. A run picks its script through its model spec
 * (`openai-compatible/<script>`), and the app reaches the server through
 * AGENT_BASE_URL, the same path a real OpenAI-compatible server takes.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { ReplayScript } from "../../model-replay/script";
import { startReplayServer } from "../../model-replay/server";

export type ReplayServer = Awaited<ReturnType<typeof startReplayServer>>;
export type Turn = ReplayScript["turns"][number];

export const testScriptsFolder = fileURLToPath(new URL("../scripts", import.meta.url));

export async function startTestModel(): Promise<{ replay: ReplayServer; env: Record<string, string> }> {
  const replay = await startReplayServer({ scripts: testScriptsFolder, host: "127.0.0.1", port: 0 });
  // BAML prints a whole prompt at warn level when a reply does not parse; the tests make many on purpose.
  return { replay, env: { AGENT_BASE_URL: replay.url, BAML_LOG: "error" } };
}

/** Adds a script under a fresh name and returns the model spec that replays it. */
export function scripted(replay: ReplayServer, turns: Turn[], extra: Partial<ReplayScript> = {}): string {
  const name = `test-${randomUUID().slice(0, 8)}`;
  replay.addScript({ name, turns, ...extra } as ReplayScript);
  return `openai-compatible/${name}`;
}

/** Turns, spelled the way a model would answer. */
export const turn = {
  write: (path: string, content: string, extra: Partial<Turn> = {}): Turn => ({
    reply: { tool: "write_file", path, content },
    ...extra,
  }),
  read: (path: string): Turn => ({ reply: { tool: "read_file", path } }),
  list: (path?: string): Turn => ({ reply: { tool: "list_files", ...(path ? { path } : {}) } }),
  run: (command: string, extra: Partial<Turn> = {}): Turn => ({ reply: { tool: "run_command", command }, ...extra }),
  todos: (...items: [string, "pending" | "in_progress" | "completed"][]): Turn => ({
    reply: { tool: "todo_write", todos: items.map(([content, status], i) => ({ id: String(i + 1), content, status })) },
  }),
  reply: (message: string, extra: Partial<Turn> = {}): Turn => ({
    reply: { tool: "reply_to_user", message },
    ...extra,
  }),
  raw: (raw: string): Turn => ({ raw }),
};
