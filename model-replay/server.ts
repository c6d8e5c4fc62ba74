/**
 * The replay server: an OpenAI-compatible endpoint (the subset BAML's
 * `openai-generic` client uses) that answers with scripted replies instead of
 * a model. The request's `model` field names the script. Used by tests, the
 * benchmark and the app's offline demo; node:http only.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { approximateTokens, AttemptCounter, messageText, planAnswer, type ChatMessage } from "./answer";
import { loadReplayScripts, parseReplayScript, type ReplayScript } from "./script";

export interface ReplayServerOptions {
  /** The scripts, or a folder of `*.json` script files. */
  scripts: ReplayScript[] | string;
  /** Added before every answer (a model's usual latency). */
  latencyMs?: number;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** A streamed reply's piece size in characters, unless its turn says otherwise (default 64). */
  chunkChars?: number;
  /** The wait between a streamed reply's pieces, unless its turn says otherwise (default 0). */
  chunkDelayMs?: number;
  /** Called as each content piece of a streamed reply is written (benchmarks time the path from here). */
  onChunk?: (chunk: ReplayChunk) => void;
}

export interface ReplayChunk {
  model: string;
  /** The request's place in requestLog's numbering (1 = the first request). */
  request: number;
  /** The piece's number in its reply, from 0. */
  index: number;
  /** Characters of the reply written so far, this piece included. */
  sentChars: number;
  /** performance.now() just before the piece was written. */
  at: number;
}

export interface ReplayServer {
  /** Base URL ending in /v1, for an OpenAI-compatible client's base_url. */
  url: string;
  /** Chat completion requests received so far (retries and title requests included). */
  readonly requests: number;
  /** The text of each of the last 100 requests' messages joined (newest last), for tests that check what the model was sent. */
  readonly recentPrompts: readonly string[];
  /** Every request's script, kind and prompt size (the last 10,000), for tests and benchmarks of prompt size. */
  readonly requestLog: readonly ReplayRequest[];
  close(): Promise<void>;
  /** Adds a script, or replaces the one with the same name (and resets its error injection). */
  addScript(script: ReplayScript): void;
  /** The Authorization header of each of the last 1,000 requests (chat and model list; "" when absent), newest last. */
  readonly authorizations: readonly string[];
  /** Answers 401, as a provider does for a revoked key, every request with `Authorization: Bearer <key>`. */
  refuseKey(key: string): void;
}

export interface ReplayRequest {
  model: string;
  /** The script turn answered (a number), or what else the request was. */
  turn: number | "title" | "summary" | "ended";
  /** Prompt tokens as the usage reports them: the messages' characters / 4. */
  promptTokens: number;
  /** The first characters of the request's last message (the newest turn), to tell requests apart. */
  lastMessage: string;
  /** Whether streamed: the answer went out as SSE chunks. */
  stream: boolean;
  /**
   * How the answer ended: sent in full ("completed"), the client hung up before it was all written ("aborted"),
   * an error status ("error"); "pending" while it is being written.
   */
  outcome: "pending" | "completed" | "aborted" | "error";
  /** Content pieces written (streamed answers). */
  chunksSent: number;
  /** The images the request carried (content parts of type image_url), described, not kept. */
  images: ReplayImage[];
}

/** One image part of a request: where it was and what it held (its data: URL decoded), never its bytes. */
export interface ReplayImage {
  /** Its message's index in the request, and that message's role. */
  message: number;
  role: string;
  /** The first characters of that message's text. */
  text: string;
  mediaType: string;
  bytes: number;
  sha256: string;
}

/** The image_url parts (data: URLs, as BAML sends an image) of a request's messages. */
export function imagePartsOf(messages: readonly ChatMessage[]): ReplayImage[] {
  return messages.flatMap((message, index) => {
    if (!Array.isArray(message.content)) return [];
    return (message.content as unknown[]).flatMap((part) => {
      const url = (part as { type?: unknown; image_url?: { url?: unknown } } | null)?.image_url?.url;
      if ((part as { type?: unknown } | null)?.type !== "image_url" || typeof url !== "string") return [];
      const match = /^data:([^;,]+);base64,(.*)$/s.exec(url);
      const bytes = match ? Buffer.from(match[2]!, "base64") : Buffer.alloc(0);
      return [
        {
          message: index,
          role: String(message.role),
          text: messageText(message).slice(0, 200),
          mediaType: match?.[1] ?? "(not a data: URL)",
          bytes: bytes.byteLength,
          sha256: createHash("sha256").update(bytes).digest("hex"),
        },
      ];
    });
  });
}

const MAX_REQUEST_LOG = 10_000;
/** Enough for a test to read every request of a long scripted run. */
const MAX_RECENT_PROMPTS = 100;

const MAX_BODY_BYTES = 32 * 1024 * 1024;

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
  ) {
    super(message);
  }
}

function errorType(status: number): string {
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** The error shape OpenAI's API uses, which clients (BAML included) show in their messages. */
function sendError(res: ServerResponse, status: number, message: string, type = errorType(status)): void {
  sendJson(res, status, { error: { message, type, param: null, code: null } });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, "Request body too large.");
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpProblem(400, "Request body is not valid JSON.");
  }
}

/** Streams a reply as OpenAI's SSE chunks: role, content pieces, finish, optional usage, [DONE]. */
async function sendStream(
  res: ServerResponse,
  base: { id: string; created: number; model: string },
  content: string,
  usage: object,
  {
    includeUsage,
    chunkChars,
    chunkDelayMs,
    wait,
    onPiece,
  }: {
    includeUsage: boolean;
    chunkChars: number;
    chunkDelayMs: number;
    /** Waits between pieces; false when the client went away meanwhile. */
    wait: (ms: number) => Promise<boolean>;
    onPiece: (index: number, sentChars: number) => void;
  },
): Promise<"completed" | "aborted"> {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  res.flushHeaders();
  const chunk = (choices: unknown[], extra: object = {}) =>
    res.write(`data: ${JSON.stringify({ ...base, object: "chat.completion.chunk", choices, ...extra })}\n\n`);
  chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
  // Cut on code points, so a piece never ends inside a surrogate pair.
  const points = Array.from(content);
  let sent = 0;
  for (let i = 0, piece = 0; i < points.length; i += chunkChars, piece++) {
    if (piece > 0 && chunkDelayMs > 0 && !(await wait(chunkDelayMs))) return "aborted";
    if (res.destroyed) return "aborted";
    const text = points.slice(i, i + chunkChars).join("");
    sent += text.length;
    onPiece(piece, sent);
    chunk([{ index: 0, delta: { content: text }, finish_reason: null }]);
  }
  if (res.destroyed) return "aborted";
  chunk([{ index: 0, delta: {}, finish_reason: "stop" }]);
  if (includeUsage) chunk([], { usage });
  res.end("data: [DONE]\n\n");
  return "completed";
}

export async function startReplayServer(options: ReplayServerOptions): Promise<ReplayServer> {
  const { latencyMs = 0, host = "127.0.0.1", port = 0 } = options;
  const defaultChunkChars = options.chunkChars ?? 64;
  const defaultChunkDelayMs = options.chunkDelayMs ?? 0;
  const scripts = new Map<string, ReplayScript>();
  const initial =
    typeof options.scripts === "string"
      ? await loadReplayScripts(options.scripts)
      : options.scripts.map((script) => parseReplayScript(script, `replay script "${script.name}"`));
  for (const script of initial) {
    if (scripts.has(script.name)) throw new Error(`Two replay scripts are named "${script.name}".`);
    scripts.set(script.name, script);
  }
  const attempts = new AttemptCounter();
  // Waits in progress, so close() does not hang on a scripted 30 s delay.
  const pending = new Set<AbortController>();
  let requests = 0;
  const recentPrompts: string[] = [];
  const requestLog: ReplayRequest[] = [];
  let completionId = 0;

  /** Waits, unless the client hangs up (or the server closes) first: then nothing is written. */
  async function waitUnlessGone(ms: number, res: ServerResponse): Promise<boolean> {
    if (ms <= 0) return !res.destroyed;
    const controller = new AbortController();
    const onClose = () => controller.abort();
    res.once("close", onClose);
    pending.add(controller);
    try {
      await sleep(ms, undefined, { signal: controller.signal });
      return !res.destroyed;
    } catch {
      return false;
    } finally {
      pending.delete(controller);
      res.off("close", onClose);
    }
  }

  async function chatCompletion(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests++;
    const body = await readJson(req);
    if (!body || typeof body !== "object") throw new HttpProblem(400, "Request body must be a JSON object.");
    const { model, messages, stream, stream_options } = body as Record<string, unknown>;
    if (typeof model !== "string") throw new HttpProblem(400, "`model` must name a replay script.");
    if (!Array.isArray(messages)) throw new HttpProblem(400, "`messages` must be an array.");
    recentPrompts.push((messages as ChatMessage[]).map(messageText).join("\n"));
    if (recentPrompts.length > MAX_RECENT_PROMPTS) recentPrompts.shift();
    const script = scripts.get(model);
    if (!script) {
      const known = [...scripts.keys()].join(", ") || "none";
      throw new HttpProblem(404, `No replay script named "${model}". Known scripts: ${known}.`, "model_not_found");
    }

    const answer = planAnswer(script, messages as ChatMessage[], attempts);
    const promptChars = (messages as ChatMessage[]).reduce((sum, message) => sum + messageText(message).length, 0);
    const last = (messages as ChatMessage[]).at(-1);
    const logged: ReplayRequest = {
      model,
      turn: answer.turn,
      promptTokens: Math.ceil(promptChars / 4),
      lastMessage: last ? messageText(last).slice(0, 200) : "",
      images: imagePartsOf(messages as ChatMessage[]),
      stream: stream === true,
      outcome: "pending",
      chunksSent: 0,
    };
    requestLog.push(logged);
    if (requestLog.length > MAX_REQUEST_LOG) requestLog.shift();
    const number = requests;
    const delay = latencyMs + (answer.kind === "reply" ? answer.delayMs : 0);
    if (!(await waitUnlessGone(delay, res))) {
      logged.outcome = "aborted";
      return;
    }
    if (answer.kind === "error") {
      logged.outcome = "error";
      return sendError(res, answer.status, answer.message);
    }

    const usage = {
      prompt_tokens: Math.ceil(promptChars / 4),
      completion_tokens: approximateTokens(answer.content),
      total_tokens: Math.ceil(promptChars / 4) + approximateTokens(answer.content),
    };
    const base = { id: `chatcmpl-replay-${++completionId}`, created: Math.floor(Date.now() / 1000), model };
    if (stream === true) {
      const includeUsage = Boolean((stream_options as { include_usage?: unknown } | undefined)?.include_usage);
      logged.outcome = await sendStream(res, base, answer.content, usage, {
        includeUsage,
        chunkChars: answer.chunkChars ?? defaultChunkChars,
        chunkDelayMs: answer.chunkDelayMs ?? defaultChunkDelayMs,
        wait: (ms) => waitUnlessGone(ms, res),
        onPiece: (index, sentChars) => {
          logged.chunksSent = index + 1;
          options.onChunk?.({ model, request: number, index, sentChars, at: performance.now() });
        },
      });
      return;
    }
    logged.outcome = "completed";
    sendJson(res, 200, {
      ...base,
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: answer.content }, finish_reason: "stop" }],
      usage,
    });
  }

  function listModels(res: ServerResponse): void {
    const data = [...scripts.values()].map((script) => ({
      id: script.name,
      object: "model",
      created: 0,
      owned_by: "dyno-replay",
    }));
    sendJson(res, 200, { object: "list", data });
  }

  const authorizations: string[] = [];
  const refusedKeys = new Set<string>();

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://replay").pathname.replace(/\/+$/, "");
    const route = `${req.method} ${path}`;
    const authorization = req.headers.authorization ?? "";
    authorizations.push(authorization);
    if (authorizations.length > 1000) authorizations.shift();
    const handle = async () => {
      if (refusedKeys.has(authorization.replace(/^Bearer /, "")))
        throw new HttpProblem(401, "Incorrect API key provided.", "invalid_api_key");
      if (route === "POST /v1/chat/completions") return chatCompletion(req, res);
      if (route === "GET /v1/models") return listModels(res);
      throw new HttpProblem(
        404,
        `The replay server has no ${route}: it serves POST /v1/chat/completions and GET /v1/models.`,
      );
    };
    handle().catch((error: unknown) => {
      if (res.headersSent || res.destroyed) return;
      if (error instanceof HttpProblem) return sendError(res, error.status, error.message, error.type);
      sendError(res, 500, `Replay server error: ${(error as Error).message}`);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  // A wildcard bind is reached through loopback.
  const reachable = address.address === "0.0.0.0" || address.address === "::" ? "127.0.0.1" : address.address;
  const urlHost = reachable.includes(":") ? `[${reachable}]` : reachable;

  return {
    url: `http://${urlHost}:${address.port}/v1`,
    get requests() {
      return requests;
    },
    get recentPrompts() {
      return recentPrompts;
    },
    get requestLog() {
      return requestLog;
    },
    get authorizations() {
      return authorizations;
    },
    refuseKey(key) {
      refusedKeys.add(key);
    },
    addScript(script) {
      scripts.set(script.name, parseReplayScript(script, `replay script "${script.name}"`));
      attempts.forget(script.name);
    },
    close() {
      for (const controller of pending) controller.abort();
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
