// What server/app.ts passes loaders and actions as `context`.
declare module "@remix-run/node" {
  interface AppLoadContext {
    /** The client's address, for the sign-in rate limit. */
    clientAddress: string;
  }
}

export {};
