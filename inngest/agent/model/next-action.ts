/**
 * The agent's one question to the model: what is the next action? Output the
 * model got wrong (unparseable, or a tool it may not use) is a result, not an
 * exception: the loop shows the model its mistake and asks again. Transport
 * failures that outlast the retries (retry.ts), refusals, timeouts and aborts
 * are thrown, for the caller's durable step to retry, fail or stop.
 */
import {
  BamlAbortError,
  BamlClientFinishReasonError,
  BamlClientHttpError,
  BamlTimeoutError,
  BamlValidationError,
  Collector,
  toBamlError,
  type ClientRegistry,
} from "@boundaryml/baml";
import {
  b,
  type AppLogs,
  type ConversationTurn,
  type ListFiles,
  type ProjectContext,
  type ReadFile,
  type ReplyToUser,
  type RunCommand,
  type StartApp,
  type TodoWrite,
  type WriteFile,
} from "../../../baml_client";
import { UNTITLED_PROJECT } from "../../../db/schema";
import { countModelTokens, type ModelCall } from "../../../metrics/registry";
import { bamlClientOptions } from "./client";
import type { ModelConfig } from "./config";
import { withModelRetry } from "./retry";

export { isModelError, isPermanentModelError, providerMessage } from "./retry";
export type { AppContext, ConversationTurn, ProjectContext } from "../../../baml_client";

export type AgentMode = "build" | "ask";
export type AgentAction = WriteFile | ReadFile | ListFiles | RunCommand | TodoWrite | StartApp | AppLogs | ReplyToUser;
export type ToolName = AgentAction["tool"];

export const TOOL_NAMES: readonly ToolName[] = [
  "write_file",
  "read_file",
  "list_files",
  "run_command",
  "todo_write",
  "start_app",
  "app_logs",
  "reply_to_user",
];
/** Ask mode looks but does not touch. */
export const READ_ONLY_TOOLS: readonly ToolName[] = ["read_file", "list_files", "app_logs", "reply_to_user"];

export function toolsFor(mode: AgentMode): readonly ToolName[] {
  return mode === "ask" ? READ_ONLY_TOOLS : TOOL_NAMES;
}

export interface ModelUsage {
  inputTokens: number;
  outputTokens: number;
}

export type NextActionResult =
  | { ok: true; action: AgentAction; raw: string; usage: ModelUsage }
  | {
      ok: false;
      problem: "unparseable" | "unknown_tool";
      /** Written for the model: what was wrong and what to do instead. */
      error: string;
      raw: string;
      usage: ModelUsage;
    };

export interface NextActionInput {
  /** Not needed for the call (the registry carries the client); kept for the caller's logs and errors. */
  config: ModelConfig;
  registry: ClientRegistry;
  mode: AgentMode;
  context: ProjectContext;
  conversation: ConversationTurn[];
  signal?: AbortSignal;
  /**
   * Called with each partial action while the model writes it (BAML's stream; decision 035). The final action
   * is parsed from the whole reply exactly as without it; a retried call starts its partials again.
   */
  onPartial?: (partial: unknown) => void;
}

/** Tokens BAML recorded for the call (0 when the provider reported none), counted for /metrics as they are read. */
export function usageOf(collector: Collector, call: ModelCall): ModelUsage {
  const usage = collector.last?.usage;
  const tokens = { inputTokens: usage?.inputTokens ?? 0, outputTokens: usage?.outputTokens ?? 0 };
  countModelTokens(call, tokens);
  return tokens;
}

/** The JSON object a reply holds, if any: bare, inside ``` fences, or amid prose. */
export function jsonObjectIn(raw: string): Record<string, unknown> | undefined {
  const fenced = /```(?:json)?\s*([\s\S]*?)```/i.exec(raw)?.[1];
  const candidates = [raw, fenced, raw.slice(raw.indexOf("{"), raw.lastIndexOf("}") + 1)];
  for (const text of candidates) {
    if (!text?.trim()) continue;
    try {
      const value: unknown = JSON.parse(text);
      if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // Not this one; try the next reading.
    }
  }
  return undefined;
}

function list(tools: readonly string[]): string {
  return tools.join(", ");
}

function unknownToolMessage(tool: string, mode: AgentMode): string {
  if (mode === "ask" && TOOL_NAMES.includes(tool as ToolName)) {
    return (
      `The tool "${tool}" is not allowed in ask mode: ask mode is read-only. ` +
      `Use one of ${list(READ_ONLY_TOOLS)}. If the user wants a change, say so with reply_to_user and suggest build mode.`
    );
  }
  return `There is no tool named "${tool}". The available tools are ${list(toolsFor(mode))}. Reply with exactly one JSON object for one of them.`;
}

function unparseableMessage(raw: string, mode: AgentMode, tool: unknown): string {
  const tools = list(toolsFor(mode));
  if (!raw.trim()) return `Your reply was empty. Reply with exactly one JSON object for one of these tools: ${tools}.`;
  if (typeof tool === "string") {
    return (
      `Your reply names the tool "${tool}" but its fields do not match that tool's schema (a required field is missing or has the wrong type). ` +
      `Reply again with exactly one JSON object with all the fields the answer format lists for ${tool}.`
    );
  }
  return (
    "Your reply could not be read as an action. Reply with exactly one JSON object, " +
    `with a "tool" field naming one of ${tools} and that tool's fields, and nothing else.`
  );
}

/** Explains a reply BAML could not turn into an action. */
function rejectedReply(raw: string, mode: AgentMode, usage: ModelUsage): NextActionResult {
  const tool = jsonObjectIn(raw)?.tool;
  if (typeof tool === "string" && !toolsFor(mode).includes(tool as ToolName)) {
    return { ok: false, problem: "unknown_tool", error: unknownToolMessage(tool, mode), raw, usage };
  }
  return { ok: false, problem: "unparseable", error: unparseableMessage(raw, mode, tool), raw, usage };
}

/**
 * A streamed call that ran out of time comes back as a plain HTTP 408 with no response; a plain call's is a
 * BamlTimeoutError. The caller tells them apart, so make them the same.
 */
function streamedError(error: Error): Error {
  if (
    error instanceof BamlClientHttpError &&
    !(error instanceof BamlTimeoutError) &&
    error.status_code === 408 &&
    !error.raw_response &&
    /timed out/i.test(error.message)
  ) {
    const timeout = new BamlTimeoutError(error.client_name, error.message);
    timeout.stack = error.stack;
    return timeout;
  }
  return error;
}

export async function nextAction(input: NextActionInput): Promise<NextActionResult> {
  const { registry, mode, context, conversation, signal, onPartial } = input;
  const collector = new Collector("next-action");
  const options = { ...bamlClientOptions(registry, { streaming: true }), collector, ...(signal ? { signal } : {}) };
  // Streamed (the reply arrives as the model writes it); the final parse is the same as a plain call's.
  const streamed = async (): Promise<AgentAction> => {
    try {
      const stream =
        mode === "ask"
          ? b.stream.AskAgent(context, conversation, options)
          : b.stream.CodingAgent(context, conversation, options);
      // Partials are handed over beside the call, not before its end: BAML's partial iterator looks at its queue
      // every 100 ms, so waiting for it to finish added up to that much to every step. Its errors are the call's
      // (getFinalResponse throws them), so the drain only swallows them.
      let final = false;
      const draining = onPartial
        ? (async () => {
            for await (const partial of stream) {
              if (final || signal?.aborted) break;
              onPartial(partial);
            }
          })().catch(() => {})
        : undefined;
      try {
        return await stream.getFinalResponse();
      } finally {
        final = true;
        void draining;
      }
    } catch (error) {
      // The stream hands over the runtime's errors as they are: convert them as a plain call would.
      throw streamedError(toBamlError(error));
    }
  };
  try {
    const action: AgentAction = await withModelRetry(streamed, { signal });
    const raw = collector.last?.rawLlmResponse ?? JSON.stringify(action);
    const usage = usageOf(collector, "next_action");
    // The function's return type already limits the tools; this guards against a baml_src change.
    if (!toolsFor(mode).includes(action.tool)) {
      return { ok: false, problem: "unknown_tool", error: unknownToolMessage(action.tool, mode), raw, usage };
    }
    return { ok: true, action, raw, usage };
  } catch (error) {
    // Output the model got wrong. (A finish-reason error means it was cut off, e.g. by max tokens.)
    if (error instanceof BamlValidationError || error instanceof BamlClientFinishReasonError) {
      return rejectedReply(error.raw_output, mode, usageOf(collector, "next_action"));
    }
    throw error;
  }
}

/** Tidies a model's title: one line, no quotes or trailing period, at most 6 words and 80 characters. */
export function cleanTitle(text: string): string {
  const line = text.trim().split("\n")[0] ?? "";
  const unquoted = line
    .replace(/^(title:\s*)/i, "")
    .replace(/^["'“”‘’`*#\s]+|["'“”‘’`*\s]+$/g, "")
    .replace(/\.+$/, "");
  return unquoted.split(/\s+/).filter(Boolean).slice(0, 6).join(" ").slice(0, 80);
}

export async function generateTitle(input: {
  registry: ClientRegistry;
  prompt: string;
  signal?: AbortSignal;
}): Promise<{ title: string; usage: ModelUsage }> {
  const collector = new Collector("generate-title");
  const options = {
    ...bamlClientOptions(input.registry),
    collector,
    ...(input.signal ? { signal: input.signal } : {}),
  };
  const text = await withModelRetry(() => b.GenerateTitle(input.prompt, options), { signal: input.signal });
  return { title: cleanTitle(text) || UNTITLED_PROJECT, usage: usageOf(collector, "title") };
}

/** A call stopped through its AbortSignal (the builder pressed Stop). */
export function isAbortError(error: unknown): boolean {
  return error instanceof BamlAbortError || (error instanceof Error && error.name === "AbortError");
}

/** A model call that ran out of time (BAML's http.request_timeout_ms, after the retries). */
export function isTimeoutError(error: unknown): boolean {
  return error instanceof BamlTimeoutError;
}
