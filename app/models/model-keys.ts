/** Limits and names the Settings page and the server share (model-keys.server.ts checks them). */
import type { ModelKeyProvider } from "../../db/schema";

export const MAX_MODEL_KEYS = 20;
export const MAX_KEY_MODELS = 20;
export const MAX_KEY_LABEL_CHARS = 60;
export const MAX_API_KEY_CHARS = 1_000;
export const MAX_MODEL_ID_CHARS = 200;

export const PROVIDER_NAMES: Record<ModelKeyProvider, string> = {
  openai: "OpenAI",
  anthropic: "Anthropic",
  "openai-compatible": "OpenAI-compatible server",
};
