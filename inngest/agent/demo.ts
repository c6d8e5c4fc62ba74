/**
 * The offline demo: a bundled replay script served by the model stand-in
 * inside this process, so `npm run dev` shows the whole agent working with
 * no model key. Runs that use it carry the model spec "replay/<script>" and
 * are labelled as replays wherever they are shown.
 */
import { BUNDLED_SCRIPTS_DIR, DEMO_SCRIPT, parseReplayScript } from "../../model-replay/script";
import demoScript from "../../model-replay/scripts/todo-page.json";
import { startReplayServer } from "../../model-replay/server";

// The script's own prompt: the replay server starts the script over at it, so every demo run replays from the start.
const { name, prompt } = parseReplayScript(demoScript, `replay script ${DEMO_SCRIPT}.json`);
if (name !== DEMO_SCRIPT || !prompt)
  throw new Error(`The demo script ${DEMO_SCRIPT}.json must be named "${DEMO_SCRIPT}" and have a prompt.`);

export const DEMO = {
  model: `replay/${DEMO_SCRIPT}`,
  prompt,
} as const;

const key = Symbol.for("dyno.demoReplayServer");
type Holder = { [key]?: Promise<{ url: string; close(): Promise<void> }> };

/** Base URL (…/v1) of the in-process replay server, started on first use. */
export async function demoReplayBaseUrl(): Promise<string> {
  // On globalThis: Vite's dev server may load this module twice; one server is enough.
  const holder = globalThis as Holder;
  holder[key] ??= startReplayServer({ scripts: BUNDLED_SCRIPTS_DIR, host: "127.0.0.1", port: 0 });
  return (await holder[key]).url;
}

export async function closeDemoReplayServer(): Promise<void> {
  const holder = globalThis as Holder;
  const server = holder[key];
  delete holder[key];
  if (server) await (await server).close();
}
