/**
 * Replay scripts: the scripted model replies the replay server answers with.
 * A script is data (a JSON file), so tests, the benchmark and the offline
 * demo can add scenarios without writing code.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

const httpErrorStatus = z.number().int().min(400).max(599);

const TurnSchema = z
  .object({
    /** An action object; sent as the assistant message's content, serialized as JSON. */
    reply: z
      .object({ tool: z.string().min(1) })
      .passthrough()
      .optional(),
    /** Sent verbatim as the assistant message's content (e.g. malformed output). */
    raw: z.string().optional(),
    /** HTTP statuses answered on the first attempts of this turn, before the reply. */
    errors: z.array(httpErrorStatus).optional(),
    /** Wait this long before sending the reply (a slow model). */
    delayMs: z.number().int().min(0).optional(),
    /** A streamed reply (`stream: true`) is sent in pieces of this many characters (default 64, or the server's). */
    chunkChars: z.number().int().min(1).max(1_000_000).optional(),
    /** Wait this long between a streamed reply's pieces (a model generating tokens; default 0, or the server's). */
    chunkDelayMs: z.number().int().min(0).max(60_000).optional(),
  })
  .strict()
  .refine((turn) => (turn.reply === undefined) !== (turn.raw === undefined), {
    message: "a turn needs exactly one of `reply` (an action object) or `raw` (verbatim text)",
  });

export const ReplayScriptSchema = z
  .object({
    /** What a client puts in the request's `model` field to get this script. */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-' only"),
    description: z.string().optional(),
    /** The answer to a title request (GenerateTitle). */
    title: z.string().optional(),
    /** The answer to a compaction request (SummarizeSession); unset, a digest of the request (answer.ts). */
    summary: z.string().optional(),
    /**
     * The prompt that starts this script. When set, the script starts over at
     * every user turn carrying it, so each run sent this prompt replays from
     * the first turn (the offline demo); unset, a whole conversation (every
     * run of a project) is one script.
     */
    prompt: z.string().trim().min(1).optional(),
    turns: z.array(TurnSchema),
  })
  .strict();

export type ReplayScript = z.infer<typeof ReplayScriptSchema>;
export type ReplayTurn = ReplayScript["turns"][number];

/** The name of the bundled offline demo script. */
export const DEMO_SCRIPT = "todo-page";

/**
 * The folder of scripts shipped with Dyno (the offline demo is `todo-page`).
 * Beside this module when it runs from source (tsx, Vite dev); a production
 * `remix vite:build` bundles it elsewhere, so then the folder is found from
 * the working directory (the project root, where `npm start` runs).
 */
export const BUNDLED_SCRIPTS_DIR =
  [fileURLToPath(new URL("./scripts/", import.meta.url)), path.resolve("model-replay", "scripts")].find((folder) =>
    existsSync(path.join(folder, `${DEMO_SCRIPT}.json`)),
  ) ?? path.resolve("model-replay", "scripts");

/** Validates a parsed script; `source` names it in the error (e.g. its file). */
export function parseReplayScript(data: unknown, source = "replay script"): ReplayScript {
  const parsed = ReplayScriptSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join(".") || "(root)"}: ${issue.message}`);
    throw new Error(`Invalid ${source}:\n${problems.join("\n")}`);
  }
  return parsed.data;
}

export async function loadReplayScript(file: string): Promise<ReplayScript> {
  const text = await readFile(file, "utf8");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`Invalid replay script ${file}: not JSON (${(error as Error).message})`);
  }
  return parseReplayScript(data, `replay script ${file}`);
}

/** Every `*.json` script in a folder, sorted by file name. */
export async function loadReplayScripts(folder: string): Promise<ReplayScript[]> {
  const files = (await readdir(folder)).filter((name) => name.endsWith(".json")).sort();
  return Promise.all(files.map((name) => loadReplayScript(path.join(folder, name))));
}
