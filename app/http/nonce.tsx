/**
 * The Content-Security-Policy nonce of this response (server/security-headers.ts
 * makes one per request and passes it through the load context). Only the
 * server render knows it; in the browser it is "" (browsers hide the
 * attribute's value from scripts anyway).
 */
import { createContext, useContext } from "react";

const NonceContext = createContext("");

export const NonceProvider = NonceContext.Provider;

export function useNonce(): string {
  return useContext(NonceContext);
}
