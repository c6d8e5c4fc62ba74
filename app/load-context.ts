// What server/app.ts passes loaders and actions as `context`.
declare module "@remix-run/node" {
  interface AppLoadContext {
    /** The client's address, for the sign-in and sign-up rate limits. */
    clientAddress: string;
    /** This response's Content-Security-Policy nonce (server/security-headers.ts), for Remix's inline scripts. */
    cspNonce: string;
  }
}

export {};
