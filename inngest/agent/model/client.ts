/**
 * The BAML client for a ModelConfig, chosen at run time. The functions in
 * baml_src/ name only a placeholder; every call passes the options made here
 * (`bamlClientOptions`): a ClientRegistry that names the client, and for the
 * clients defined in baml_src/clients.baml, the `env` that gives them their
 * model, key and URL. Those are built once by BAML and kept while the env is
 * the same; a client added to a registry is built again on every call, its
 * TLS roots parsed each time (~16 ms of CPU a call), so only what the defined
 * ones cannot express goes that way: a fallback, a timeout other than the
 * default (decision 037).
 */
import { ClientRegistry } from "@boundaryml/baml";
import type { ModelConfig } from "./config";

/** A whole request-response, per attempt. Long enough for a model writing a large file. clients.baml too. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 180_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** Anthropic requires max_tokens; whole files need room (8192 fits every current Claude model). clients.baml too. */
const ANTHROPIC_MAX_TOKENS = 8192;
/** OpenAI's endpoint, unless AGENT_BASE_URL says otherwise (BAML's own default for provider "openai"). */
const OPENAI_BASE_URL = "https://api.openai.com/v1";

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

/**
 * The registry for a config: pass it to `bamlClientOptions` for each call. OpenAI-style servers report a stream's
 * usage only when asked, and refuse the question on a plain call, so streamed calls get a twin that asks.
 */
export function createClientRegistry(config: ModelConfig, options: ClientRegistryOptions = {}): ClientRegistry {
  if (!options.fallback && (options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS) === DEFAULT_REQUEST_TIMEOUT_MS) {
    const { plain, streaming, env } = definedClient(config, options.replayBaseUrl);
    const registry = naming(plain);
    callOptions.set(registry, {
      plain: { clientRegistry: registry, env },
      streaming: { clientRegistry: naming(streaming), env },
    });
    return registry;
  }
  const registry = buildRegistry(config, options, false);
  callOptions.set(registry, {
    plain: { clientRegistry: registry },
    streaming: { clientRegistry: buildRegistry(config, options, true) },
  });
  return registry;
}

/** BAML's options for one call: the registry, and the env of a client defined in baml_src. */
export interface BamlClientOptions {
  clientRegistry: ClientRegistry;
  env?: Record<string, string>;
}

/** How each registry made here is called, plain and streamed. */
const callOptions = new WeakMap<ClientRegistry, { plain: BamlClientOptions; streaming: BamlClientOptions }>();

/** The options a call passes to BAML for a registry made by createClientRegistry (streamed: asking for usage). */
export function bamlClientOptions(registry: ClientRegistry, { streaming = false } = {}): BamlClientOptions {
  const known = callOptions.get(registry);
  if (!known) return { clientRegistry: registry };
  return streaming ? known.streaming : known.plain;
}

/** The variables clients.baml reads; every call sets all three, so none comes from the process's environment. */
type LlmEnv = { DYNO_LLM_MODEL: string; DYNO_LLM_API_KEY: string; DYNO_LLM_BASE_URL: string };

/** The clients.baml client (and its streaming twin) for a config, and the env that configures them. */
function definedClient(
  config: ModelConfig,
  replayBaseUrl: string | undefined,
): { plain: string; streaming: string; env: LlmEnv } {
  const env = (apiKey: string | undefined, baseUrl: string | undefined): LlmEnv => ({
    DYNO_LLM_MODEL: config.model,
    DYNO_LLM_API_KEY: apiKey ?? "",
    DYNO_LLM_BASE_URL: baseUrl ?? "",
  });
  switch (config.provider) {
    case "openai":
      return {
        plain: "DynoOpenAI",
        streaming: "DynoOpenAIStreaming",
        env: env(config.apiKey, config.baseUrl ?? OPENAI_BASE_URL),
      };
    case "anthropic":
      return { plain: "DynoAnthropic", streaming: "DynoAnthropic", env: env(config.apiKey, undefined) };
    case "openai-compatible":
      return config.apiKey
        ? { plain: "DynoCompatible", streaming: "DynoCompatibleStreaming", env: env(config.apiKey, config.baseUrl) }
        : { plain: "DynoKeyless", streaming: "DynoKeylessStreaming", env: env(undefined, config.baseUrl) };
    case "replay": {
      const baseUrl = replayBaseUrl ?? config.baseUrl;
      if (!baseUrl) throw new Error(`${config.label} needs the replay server's URL (replayBaseUrl).`);
      return { plain: "DynoKeyless", streaming: "DynoKeylessStreaming", env: env(undefined, baseUrl) };
    }
  }
}

function naming(client: string): ClientRegistry {
  const registry = new ClientRegistry();
  registry.setPrimary(client);
  return registry;
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
