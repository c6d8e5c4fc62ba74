/**
 * A builder's OpenAI-compatible base URL (decision 034): parsed, and every
 * address its host resolves to checked with the webhooks' classifier
 * (inngest/webhooks/address.ts), so a builder cannot point the server's own
 * requests at its loopback, its private network or a cloud metadata address
 * unless the operator allows it (MODEL_KEYS_ALLOW_PRIVATE=1). Checked when the
 * key is added, on Check connection, and before each step's model client is
 * built (a host may resolve elsewhere later).
 */
import { lookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { classifyAddress, type Resolver } from "../../webhooks/address";
import { ModelNotConfiguredError } from "./config";

export const MAX_BASE_URL_CHARS = 2_000;

export class ModelBaseUrlError extends ModelNotConfiguredError {
  override name = "ModelBaseUrlError";
}

/** The URL without a trailing slash, if it is one a base URL may be; a ModelBaseUrlError saying why otherwise. */
export function parseModelBaseUrl(input: string): string {
  const text = input.trim();
  if (!text) throw new ModelBaseUrlError("Enter the server's base URL, e.g. https://llm.example.com/v1.");
  if (text.length > MAX_BASE_URL_CHARS)
    throw new ModelBaseUrlError(`That URL is longer than ${MAX_BASE_URL_CHARS} characters.`);
  if (!URL.canParse(text)) throw new ModelBaseUrlError("That is not a URL (e.g. https://llm.example.com/v1).");
  const url = new URL(text);
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new ModelBaseUrlError("A base URL starts with https:// (or http://).");
  if (url.username || url.password)
    throw new ModelBaseUrlError("Leave credentials out of the URL: put the key in the API key field.");
  if (url.search || url.hash) throw new ModelBaseUrlError("A base URL has no ?query or #fragment.");
  return url.href.replace(/\/+$/, "");
}

const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** Where a checked base URL's host resolved to: the address a pinned request connects to. */
export interface CheckedAddress {
  address: string;
  family: 4 | 6;
}

export async function checkModelBaseUrlTarget(
  baseUrl: string,
  { allowPrivate, resolve = systemResolver }: { allowPrivate: boolean; resolve?: Resolver },
): Promise<CheckedAddress> {
  const hostname = new URL(baseUrl).hostname.replace(/^\[|\]$/g, "");
  let addresses: { address: string; family: number }[];
  try {
    addresses = await resolve(hostname);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new ModelBaseUrlError(
      code === "ENOTFOUND" || code === "ENODATA"
        ? `The model server's host ${hostname} could not be found.`
        : `The model server's host ${hostname} could not be resolved (${String(code ?? "lookup failed")}).`,
    );
  }
  if (addresses.length === 0) throw new ModelBaseUrlError(`The model server's host ${hostname} has no address.`);
  for (const { address } of addresses) {
    const verdict = classifyAddress(address);
    if (verdict.class === "public" || (verdict.class === "private" && allowPrivate)) continue;
    const which = address === hostname ? address : `${hostname} (${address})`;
    throw new ModelBaseUrlError(
      verdict.class === "private"
        ? `A model server may not be at ${which}: it is a ${verdict.range} address. ` +
            "An operator can allow private addresses with MODEL_KEYS_ALLOW_PRIVATE=1."
        : `A model server may not be at ${which}: it is a ${verdict.range} address.`,
    );
  }
  const chosen = addresses[0]!;
  return { address: chosen.address, family: chosen.family === 6 ? 6 : 4 };
}

export interface PinnedAnswer {
  status: number;
  body: string;
}

/**
 * A GET to the address the check approved (the socket's lookup answers with it, so a second DNS answer cannot point
 * elsewhere; TLS still checks the certificate against the URL's host), no redirect followed, at most `maxBytes` of
 * the body read, within `timeoutMs` for the whole exchange. Rejects with the socket's error, or a TimeoutError.
 */
export function getPinned(
  url: string,
  target: CheckedAddress,
  {
    headers,
    timeoutMs,
    maxBytes = 64 * 1024,
  }: { headers: Record<string, string>; timeoutMs: number; maxBytes?: number },
): Promise<PinnedAnswer> {
  const parsed = new URL(url);
  const client = parsed.protocol === "https:" ? https : http;
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  return new Promise((resolve, reject) => {
    const request = client.request(parsed, { method: "GET", lookup: pinned, agent: false, headers }, (response) => {
      const chunks: Buffer[] = [];
      let read = 0;
      response.on("data", (chunk: Buffer) => {
        const room = maxBytes - read;
        read += chunk.length;
        chunks.push(room >= chunk.length ? chunk : chunk.subarray(0, Math.max(0, room)));
        if (read >= maxBytes) response.destroy();
      });
      const done = () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8").slice(0, maxBytes) });
      };
      response.on("end", done);
      response.on("close", done);
    });
    const timer = setTimeout(() => {
      request.destroy(Object.assign(new Error("timed out"), { name: "TimeoutError" }));
    }, timeoutMs);
    request.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    request.end();
  });
}
