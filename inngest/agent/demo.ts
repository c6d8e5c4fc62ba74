/**
 * The offline demos: bundled replay scripts served by the model stand-in
 * inside this process, so `npm run dev` shows the whole agent working with
 * no model key. Runs that use one carry the model spec "replay/<script>" and
 * are labelled as replays wherever they are shown.
 *
 * - todo-page: a static page; needs no network at all.
 * - vite-react: a Vite + React + TypeScript app whose packages come from the
 *   npm registry (through the sandbox's egress policy), then its dev server.
 */
import { BUNDLED_SCRIPTS_DIR, DEMO_SCRIPT, parseReplayScript } from "../../model-replay/script";
import todoPageScript from "../../model-replay/scripts/todo-page.json";
import viteReactScript from "../../model-replay/scripts/vite-react.json";
import { startReplayServer } from "../../model-replay/server";

export interface Demo {
  /** The run's model spec: replay/<script>. */
  model: string;
  /** The script's own prompt: the replay server starts the script over at it, so every demo run replays from the start. */
  prompt: string;
  /** Installs packages: it needs the package registry (and the sandbox's egress policy on). */
  needsRegistry: boolean;
}

function demoFrom(data: unknown, script: string, needsRegistry: boolean): Demo {
  const { name, prompt } = parseReplayScript(data, `replay script ${script}.json`);
  if (name !== script || !prompt)
    throw new Error(`The demo script ${script}.json must be named "${script}" and have a prompt.`);
  return { model: `replay/${script}`, prompt, needsRegistry };
}

export const DEMOS = {
  [DEMO_SCRIPT]: demoFrom(todoPageScript, DEMO_SCRIPT, false),
  "vite-react": demoFrom(viteReactScript, "vite-react", true),
} as const satisfies Record<string, Demo>;

export type DemoName = keyof typeof DEMOS;

/** The first demo, the one that needs nothing: a static todo page. */
export const DEMO = DEMOS[DEMO_SCRIPT];

export function isDemoName(name: unknown): name is DemoName {
  return typeof name === "string" && Object.hasOwn(DEMOS, name);
}

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
