/**
 * The BAML client for a ModelConfig. baml_src/ names only a placeholder
 * client; every call passes the registry built here, so the model is chosen
 * at run time from the environment.
 */
import { ClientRegistry } from "@boundaryml/baml";
import type { ModelConfig } from "./config";

/** A whole request-response, per attempt. Long enough for a model writing a large file. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 180_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** Anthropic requires max_tokens; whole files need room (8192 fits every current Claude model). */
const ANTHROPIC_MAX_TOKENS = 8192;

const CLIENT_NAME = "DynoModel";
/** With a fallback, DynoModel is BAML's fallback strategy over these two (decision 034). */
const PRIMARY_NAME = "DynoPrimary";
const FALLBACK_NAME = "DynoFallback";

export interface ClientRegistryOptions {
  /** Where the replay server listens (its base URL ending in /v1); required for provider "replay". */
  replayBaseUrl?: string;
  requestTimeoutMs?: number;
  /** Tried once the primary fails (BAML's `fallback` provider, strategy [primary, fallback]). */
  fallback?: ModelConfig;
}

/** BAML's provider name and options for a config (without the http block). */
function providerOptions(config: ModelConfig, replayBaseUrl: string | undefined): [string, Record<string, unknown>] {
  switch (config.provider) {
    case "openai":
      return [
        "openai",
        { model: config.model, api_key: config.apiKey, ...(config.baseUrl ? { base_url: config.baseUrl } : {}) },
      ];
    case "anthropic":
      return ["anthropic", { model: config.model, api_key: config.apiKey, max_tokens: ANTHROPIC_MAX_TOKENS }];
    case "openai-compatible":
      return [
        "openai-generic",
        { model: config.model, base_url: config.baseUrl, ...(config.apiKey ? { api_key: config.apiKey } : {}) },
      ];
    case "replay": {
      const baseUrl = replayBaseUrl ?? config.baseUrl;
      if (!baseUrl) throw new Error(`${config.label} needs the replay server's URL (replayBaseUrl).`);
      return ["openai-generic", { model: config.model, base_url: baseUrl }];
    }
  }
}

export function createClientRegistry(config: ModelConfig, options: ClientRegistryOptions = {}): ClientRegistry {
  const registry = buildRegistry(config, options, false);
  // OpenAI-style servers report a stream's usage only when asked, and refuse the question on a plain call.
  streamingTwins.set(registry, buildRegistry(config, options, true));
  return registry;
}

/** Streaming registries of the registries built here (decision 035): the same clients, asking for usage. */
const streamingTwins = new WeakMap<ClientRegistry, ClientRegistry>();

/** The registry a streamed call uses: one that asks OpenAI-style servers for the stream's usage. */
export function streamingRegistryFor(registry: ClientRegistry): ClientRegistry {
  return streamingTwins.get(registry) ?? registry;
}

function buildRegistry(config: ModelConfig, options: ClientRegistryOptions, streaming: boolean): ClientRegistry {
  const registry = new ClientRegistry();
  // Per attempt: a retry starts a fresh request timer.
  const http = {
    connect_timeout_ms: CONNECT_TIMEOUT_MS,
    request_timeout_ms: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
  };
  const add = (name: string, model: ModelConfig) => {
    const [provider, providerSpecific] = providerOptions(model, options.replayBaseUrl);
    const usage = streaming && provider !== "anthropic" ? { stream_options: { include_usage: true } } : {};
    // No BAML retry_policy: it would retry a 401 as well; withModelRetry (retry.ts) retries only what can pass.
    registry.addLlmClient(name, provider, { ...providerSpecific, ...usage, http });
  };
  if (options.fallback) {
    add(PRIMARY_NAME, config);
    add(FALLBACK_NAME, options.fallback);
    registry.addLlmClient(CLIENT_NAME, "fallback", { strategy: [PRIMARY_NAME, FALLBACK_NAME] });
  } else {
    add(CLIENT_NAME, config);
  }
  registry.setPrimary(CLIENT_NAME);
  return registry;
}
