import type { HeadersFunction, LinksFunction, LoaderFunctionArgs } from "@remix-run/node";
import { Links, Meta, Outlet, Scripts, ScrollRestoration, isRouteErrorResponse, useRouteError } from "@remix-run/react";
import { getUser } from "./auth/session.server";
import { useNonce } from "./http/nonce";
import stylesheet from "./styles/app.css?url";

export const links: LinksFunction = () => [
  { rel: "stylesheet", href: stylesheet },
  // An inline icon: no /favicon.ico request for the router to answer with a 404.
  { rel: "icon", href: "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><path d='M8 1 15 8 8 15 1 8z' fill='%234338ca'/></svg>" },
];

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
  const title = isRouteErrorResponse(error) ? `${error.status} ${error.statusText}` : "Something went wrong";
  const detail = isRouteErrorResponse(error)
    ? typeof error.data === "string"
      ? error.data
      : null
    : error instanceof Error
      ? error.message
      : null;
  return (
    <main className="page">
      <h1>{title}</h1>
      {detail ? <p className="error">{detail}</p> : null}
      <p>
        <a href="/projects">Back to your projects</a>
      </p>
    </main>
  );
}
