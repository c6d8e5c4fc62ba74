import type { HeadersFunction, LinksFunction, LoaderFunctionArgs, MetaFunction } from "@remix-run/node";
import { Links, Meta, Outlet, Scripts, ScrollRestoration, isRouteErrorResponse, useRouteError } from "@remix-run/react";
import { getUser } from "./auth/session.server";
import { ErrorPage, NotFoundPage } from "./components/error-page";
import { useNonce } from "./http/nonce";
import stylesheet from "./styles/app.css?url";

export const links: LinksFunction = () => [
  { rel: "stylesheet", href: stylesheet },
  // Files in public/: browsers that take SVG icons use it; others (and bare /favicon.ico requests) get the .ico.
  { rel: "icon", href: "/favicon.ico", sizes: "32x32" },
  { rel: "icon", href: "/favicon.svg", type: "image/svg+xml" },
];

/** Routes set their own titles; an error page rendered by the boundary below gets one here. */
export const meta: MetaFunction = ({ error }) =>
  error
    ? [{ title: `${isRouteErrorResponse(error) && error.status === 404 ? "Page not found" : "Error"} · Dyno` }]
    : [];

/**
 * A refusal thrown by an action keeps its Allow header (a 405 from app/http/form.server.ts): Remix passes on only
 * the cookies of a thrown response unless a route's headers() forwards more, and every error lands on this boundary.
 */
export const headers: HeadersFunction = ({ errorHeaders }) => {
  const allow = errorHeaders?.get("Allow");
  return allow ? { Allow: allow } : new Headers();
};

export async function loader({ request }: LoaderFunctionArgs) {
  return { user: await getUser(request) };
}

export function Layout({ children }: { children: React.ReactNode }) {
  const nonce = useNonce();
  return (
    <html lang="en">
      <head>
        <meta charSet="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <Meta />
        <Links />
      </head>
      <body>
        {children}
        <ScrollRestoration nonce={nonce} />
        <Scripts nonce={nonce} />
      </body>
    </html>
  );
}

export default function App() {
  return <Outlet />;
}

export function ErrorBoundary() {
  const error = useRouteError();
  if (isRouteErrorResponse(error) && error.status === 404) return <NotFoundPage />;
  // A Response the app threw carries a message written for builders; the router's own ("Error: …") and any
  // exception (SQL, stack) do not belong on the page: the server logs them.
  const detail =
    isRouteErrorResponse(error) &&
    typeof error.data === "string" &&
    error.data.trim() &&
    !error.data.startsWith("Error:")
      ? error.data
      : null;
  return <ErrorPage status={isRouteErrorResponse(error) ? error.status : 500} detail={detail} />;
}
