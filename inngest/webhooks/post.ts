/**
 * One webhook POST: to the address resolveWebhookTarget checked (the socket's
 * lookup answers with it, so no second DNS answer can point elsewhere; TLS
 * still checks the certificate against the URL's host name), within a time
 * limit for the whole exchange, with no redirect followed (Node's http
 * client never follows one; a 3xx is a failed attempt), and at most a few KB
 * of the answer read.
 */
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import type { ResolvedTarget } from "./address";

export interface PostOutcome {
  /** 2xx */
  ok: boolean;
  statusCode?: number;
  /** Why it failed, in a sentence for the deliveries list. */
  error?: string;
}

const MAX_ANSWER_BYTES = 4 * 1024;

function pinnedLookup(target: ResolvedTarget): LookupFunction {
  return (_hostname, options, callback) => {
    // net asks for every address when it may try several (autoSelectFamily): there is one.
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
}

export function postWebhook(
  target: ResolvedTarget,
  { body, headers, timeoutMs }: { body: string; headers: Record<string, string>; timeoutMs: number },
): Promise<PostOutcome> {
  const { url } = target;
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
      request.destroy();
    };
    const request = client.request(
      url,
      {
        method: "POST",
        lookup: pinnedLookup(target),
        agent: false,
        headers: { ...headers, "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(body)) },
      },
      (response) => {
        const statusCode = response.statusCode ?? 0;
        let read = 0;
        response.on("data", (chunk: Buffer) => {
          read += chunk.length;
          // The answer is not used: enough of it to see the exchange end, no more.
          if (read > MAX_ANSWER_BYTES) response.destroy();
        });
        const done = () => finish(answered(statusCode, response.headers.location));
        response.on("end", done);
        response.on("close", done);
        response.on("error", done);
      },
    );
    const timer = setTimeout(
      () => finish({ ok: false, error: `No answer within ${Math.round(timeoutMs / 1000)} s.` }),
      timeoutMs,
    );
    request.on("error", (error: NodeJS.ErrnoException) => finish({ ok: false, error: describeSendError(error) }));
    request.end(body);
  });
}

function answered(statusCode: number, location: string | undefined): PostOutcome {
  if (statusCode >= 200 && statusCode < 300) return { ok: true, statusCode };
  if (statusCode >= 300 && statusCode < 400)
    return {
      ok: false,
      statusCode,
      error: `The receiver answered ${statusCode} (a redirect${location ? "" : " without a Location"}); redirects are not followed.`,
    };
  return { ok: false, statusCode, error: `The receiver answered ${statusCode}.` };
}

function describeSendError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case "ECONNREFUSED":
      return "The connection was refused.";
    case "ECONNRESET":
      return "The connection was reset before an answer came.";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "The receiver's network could not be reached.";
    default:
      return error.code ? `The POST failed (${error.code}).` : "The POST failed.";
  }
}
