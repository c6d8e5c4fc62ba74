/**
 * Retries of a model call, done here rather than by BAML's retry_policy:
 * BAML retries every HTTP error alike, so a bad key (401) or an unknown model
 * (404) was asked four times, then the durable step retried the lot. Here a
 * refusal that no retry can change fails at once, with the provider's own
 * message; rate limits (429), server errors (5xx), dropped connections and
 * timeouts are tried again after the same waits BAML used (0.6, 1.2, 2.4 s).
 */
import { BamlAbortError, BamlClientHttpError, BamlTimeoutError } from "@boundaryml/baml";

/** Waits before the 2nd, 3rd and 4th attempt. */
export const MODEL_RETRY_DELAYS_MS: readonly number[] = [600, 1_200, 2_400];

/** 4xx statuses that may pass on a later try: request timeout, conflict, rate limit. */
const TRANSIENT_CLIENT_STATUSES = new Set([408, 409, 429]);

/**
 * An HTTP error a retry will not fix: a bad key, no access, an unknown model,
 * a request the provider refuses (any 4xx but 408, 409 and 429).
 */
export function isPermanentModelError(error: unknown): boolean {
  if (!(error instanceof BamlClientHttpError) || error instanceof BamlTimeoutError) return false;
  const status = error.status_code;
  return status >= 400 && status < 500 && !TRANSIENT_CLIENT_STATUSES.has(status);
}

/** An error from the model server (an HTTP status, a failed connection, a timeout), not from Dyno. */
export function isModelError(error: unknown): error is BamlClientHttpError {
  return error instanceof BamlClientHttpError;
}

/** Worth another attempt: an HTTP error that is not permanent (5xx, 429, a connection that failed) or a timeout. */
export function isRetriableModelError(error: unknown): boolean {
  if (error instanceof BamlAbortError) return false;
  return error instanceof BamlClientHttpError && !isPermanentModelError(error);
}

const MAX_PROVIDER_MESSAGE_CHARS = 300;

/**
 * What the provider said, for a builder: the `error.message` of an OpenAI-
 * or Anthropic-style error body, else the body itself (cut short), else the
 * HTTP status. Never the request BAML sent.
 */
export function providerMessage(error: unknown): string {
  if (!(error instanceof BamlClientHttpError)) return error instanceof Error ? error.message : String(error);
  const status = error.status_code ? `HTTP ${error.status_code}` : "no HTTP response";
  const body = typeof error.raw_response === "string" ? error.raw_response.trim() : "";
  let said = body;
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const message = typeof parsed.error === "string" ? parsed.error : (parsed.error?.message ?? parsed.message);
    if (typeof message === "string" && message.trim()) said = message.trim();
  } catch {
    // Not JSON: the body as it came.
  }
  said = said.replace(/\s+/g, " ");
  if (said.length > MAX_PROVIDER_MESSAGE_CHARS) said = `${said.slice(0, MAX_PROVIDER_MESSAGE_CHARS - 1)}…`;
  return said ? `${status}: ${said}` : status;
}

function wait(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs `call`, again after each delay while it fails with a retriable model
 * error and `signal` has not aborted; then throws the last error.
 */
export async function withModelRetry<T>(
  call: () => Promise<T>,
  { signal, delaysMs = MODEL_RETRY_DELAYS_MS }: { signal?: AbortSignal; delaysMs?: readonly number[] } = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const delay = delaysMs[attempt];
      if (delay === undefined || !isRetriableModelError(error) || signal?.aborted) throw error;
      await wait(delay, signal);
      if (signal?.aborted) throw error;
    }
  }
}
