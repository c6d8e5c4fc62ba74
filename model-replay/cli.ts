/**
 * Runs the replay server by hand:
 *   npx tsx model-replay/cli.ts --port 4010 --scripts model-replay/scripts --latency 200
 * Then point any OpenAI-compatible client at the printed URL with a script's
 * name as the model, e.g. Dyno itself:
 *   AGENT_MODEL=openai-compatible/todo-page AGENT_BASE_URL=http://127.0.0.1:4010/v1
 */
import { parseArgs } from "node:util";
import { loadReplayScripts, BUNDLED_SCRIPTS_DIR } from "./script";
import { startReplayServer } from "./server";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "4010" },
    host: { type: "string", default: "127.0.0.1" },
    scripts: { type: "string", default: BUNDLED_SCRIPTS_DIR },
    latency: { type: "string", default: "0" },
  },
});

function wholeNumber(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) throw new Error(`--${name} must be a whole number, not "${value}"`);
  return number;
}

const scripts = await loadReplayScripts(values.scripts);
const server = await startReplayServer({
  scripts,
  host: values.host,
  port: wholeNumber("port", values.port),
  latencyMs: wholeNumber("latency", values.latency),
});

console.log(`Replay server at ${server.url} (POST /chat/completions, GET /models)`);
console.log(`Scripts (use as the model): ${scripts.map((script) => script.name).join(", ") || "none"}`);
console.log(
  `Try: curl -s ${server.url}/chat/completions -d '{"model":"${scripts[0]?.name ?? "name"}","messages":[{"role":"user","content":"hi"}]}'`,
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
