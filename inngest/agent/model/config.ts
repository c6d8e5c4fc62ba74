/**
 * Which model the agent talks to, from AGENT_MODEL ("provider/model") and
 * the provider's key. Pure: the caller passes the environment, so the app,
 * tests and scripts all read it the same way.
 */

export type ModelProvider = "openai" | "anthropic" | "openai-compatible" | "replay";

export interface ModelConfig {
  provider: ModelProvider;
  /** The provider's model id; for replay, the script name. */
  model: string;
  /** Overrides the provider's endpoint (required for openai-compatible). */
  baseUrl?: string;
  apiKey?: string;
  /** What the UI and logs show, e.g. "openai/gpt-4.1". */
  label: string;
}

export interface ModelEnv {
  AGENT_MODEL?: string;
  AGENT_BASE_URL?: string;
  AGENT_API_KEY?: string;
  OPENAI_API_KEY?: string;
  ANTHROPIC_API_KEY?: string;
  /** More server-offered specs, comma-separated (decision 034). */
  AGENT_MODELS?: string;
}

const PROVIDERS: readonly ModelProvider[] = ["openai", "anthropic", "openai-compatible", "replay"];

const HOW_TO_CONFIGURE =
  "set AGENT_MODEL to openai/<model> (with OPENAI_API_KEY), anthropic/<model> (with ANTHROPIC_API_KEY) " +
  "or openai-compatible/<model> (with AGENT_BASE_URL), or run the offline demo.";

/** No usable model: the message says which variables to set. */
export class ModelNotConfiguredError extends Error {
  override name = "ModelNotConfiguredError";
}

/** An unset or blank variable counts as absent. */
function present(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function checkedBaseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ModelNotConfiguredError(
      `AGENT_BASE_URL "${url}" is not a URL: give the server's base URL, e.g. http://127.0.0.1:11434/v1 for Ollama.`,
    );
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new ModelNotConfiguredError(`AGENT_BASE_URL "${url}" must be an http:// or https:// URL.`);
  }
  return url.replace(/\/+$/, "");
}

export function parseModelSpec(env: ModelEnv, spec: string | undefined = env.AGENT_MODEL): ModelConfig {
  const trimmed = present(spec);
  if (!trimmed) throw new ModelNotConfiguredError(`No model is configured: ${HOW_TO_CONFIGURE}`);

  // Only the first slash separates: model ids may contain slashes (meta-llama/Llama-3.1-8B).
  const slash = trimmed.indexOf("/");
  const provider = trimmed.slice(0, slash) as ModelProvider;
  const model = trimmed.slice(slash + 1).trim();
  if (slash < 0 || !PROVIDERS.includes(provider) || !model) {
    throw new ModelNotConfiguredError(`AGENT_MODEL "${trimmed}" is not a model spec: ${HOW_TO_CONFIGURE}`);
  }
  const label = `${provider}/${model}`;
  const baseUrl = present(env.AGENT_BASE_URL);

  switch (provider) {
    case "openai": {
      const apiKey = present(env.OPENAI_API_KEY);
      if (!apiKey)
        throw new ModelNotConfiguredError(`AGENT_MODEL is ${label}, which needs OPENAI_API_KEY: set OPENAI_API_KEY.`);
      return { provider, model, apiKey, label, ...(baseUrl ? { baseUrl: checkedBaseUrl(baseUrl) } : {}) };
    }
    case "anthropic": {
      const apiKey = present(env.ANTHROPIC_API_KEY);
      if (!apiKey)
        throw new ModelNotConfiguredError(
          `AGENT_MODEL is ${label}, which needs ANTHROPIC_API_KEY: set ANTHROPIC_API_KEY.`,
        );
      return { provider, model, apiKey, label };
    }
    case "openai-compatible": {
      if (!baseUrl) {
        throw new ModelNotConfiguredError(
          `AGENT_MODEL is ${label}, which needs AGENT_BASE_URL: set AGENT_BASE_URL to the server's OpenAI-compatible base URL ` +
            "(e.g. http://127.0.0.1:11434/v1 for Ollama), and AGENT_API_KEY if it wants a key.",
        );
      }
      const apiKey = present(env.AGENT_API_KEY);
      return { provider, model, baseUrl: checkedBaseUrl(baseUrl), label, ...(apiKey ? { apiKey } : {}) };
    }
    case "replay":
      // The replay server's URL is only known once the app has started it.
      return { provider, model, label };
  }
}

/** A model the server offers a project: its spec, and why it cannot run (a missing server key), if it cannot. */
export interface ServerModel {
  label: string;
  isDefault: boolean;
  problem: string | null;
}

/** AGENT_MODEL first (the default), then AGENT_MODELS, each spec once; replay specs are the demo's, never offered. */
export function serverModels(env: ModelEnv): ServerModel[] {
  const specs = [env.AGENT_MODEL, ...(env.AGENT_MODELS ?? "").split(",")]
    .map((s) => present(s))
    .filter((s): s is string => s !== undefined);
  const seen = new Set<string>();
  const offered: ServerModel[] = [];
  for (const [i, spec] of specs.entries()) {
    let label = spec;
    let problem: string | null = null;
    try {
      const config = parseModelSpec(env, spec);
      label = config.label;
      if (config.provider === "replay") continue;
    } catch (error) {
      if (!(error instanceof ModelNotConfiguredError)) throw error;
      problem = error.message;
    }
    if (seen.has(label)) continue;
    seen.add(label);
    offered.push({ label, isDefault: i === 0 && spec === present(env.AGENT_MODEL), problem });
  }
  return offered;
}

/** The providers a builder's own key may be for (no replay: that is the server's demo). */
export type KeyProvider = Exclude<ModelProvider, "replay">;
export const KEY_PROVIDERS: readonly KeyProvider[] = ["openai", "anthropic", "openai-compatible"];

/** A model on a builder's key, with the key opened (only inside the step that builds the client). */
export interface KeyedModel {
  provider: KeyProvider;
  model: string;
  baseUrl: string | null;
  apiKey: string | null;
}

export function keyedModelConfig({ provider, model, baseUrl, apiKey }: KeyedModel): ModelConfig {
  const label = `${provider}/${model}`;
  if (provider === "openai-compatible" && !baseUrl)
    throw new ModelNotConfiguredError(`The key for ${label} has no base URL: add the key again with its server's URL.`);
  if (provider !== "openai-compatible" && !apiKey)
    throw new ModelNotConfiguredError(`The key for ${label} has no API key: add the key again.`);
  return {
    provider,
    model,
    label,
    ...(apiKey ? { apiKey } : {}),
    ...(provider === "openai-compatible" && baseUrl ? { baseUrl: checkedBaseUrl(baseUrl) } : {}),
  };
}
