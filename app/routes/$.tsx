/**
 * Every address no other route claims: a 404 with the app's own not-found
 * page (the root ErrorBoundary), not the router's "No route matches" text.
 */
export function loader(): never {
  throw new Response("Not Found", { status: 404, statusText: "Not Found" });
}

/** A write to an address that does not exist is a 404 as well. */
export const action = loader;

export default function NoSuchPage() {
  return null;
}
