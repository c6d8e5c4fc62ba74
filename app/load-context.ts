import type { ServerResponse } from "node:http";

// What server/app.ts passes loaders and actions as `context`.
declare module "@remix-run/node" {
  interface AppLoadContext {
    /** The client's address, for the sign-in and sign-up rate limits. */
    clientAddress: string;
    /**
     * Aborts once nothing more can reach this client: its connection closed
     * (tab gone, network dropped, a write failed) or the response ended. Long
     * responses (event streams) end on it. Use it rather than `request.signal`,
     * which stops firing once Remix's intermediate Request objects are
     * garbage-collected (nodejs/node#55428, undici#3644).
     */
    responseClosed: AbortSignal;
    /**
     * Resolves once the response's socket can take more writes (at once when
     * it can, or when it closed). Remix writes a streamed body without waiting
     * for that, so event streams wait on it before reading their next message.
     */
    responseDrained: () => Promise<void>;
    /** This response's Content-Security-Policy nonce (server/security-headers.ts), for Remix's inline scripts. */
    cspNonce: string;
  }
}

/**
 * A signal that aborts when `res` closes. Node emits "close" on the response
 * when its socket closes or the response finishes; the listener is held by the
 * response, which its open socket holds, so nothing here depends on GC.
 */
export function responseClosedSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  if (res.closed || res.destroyed) controller.abort(new Error("the response is closed"));
  else res.once("close", () => controller.abort(new Error("the response is closed")));
  return controller.signal;
}

/** A function resolving once `res` has room for more writes again (its buffer drained) or is closed. */
export function responseDrainedWaiter(res: ServerResponse): () => Promise<void> {
  return () =>
    !res.writableNeedDrain || res.closed || res.destroyed
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.once("drain", done);
          res.once("close", done);
        });
}
