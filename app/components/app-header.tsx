import { Form, Link, useRouteLoaderData } from "@remix-run/react";
import type { loader as rootLoader } from "~/root";

/** The bar across every signed-in page: home, where you are, who you are, sign out. */
export function AppHeader({ children }: { children?: React.ReactNode }) {
  const root = useRouteLoaderData<typeof rootLoader>("root");
  return (
    <header className="app-header">
      <Link to="/projects" className="brand">
        Dyno
      </Link>
      <div className="app-header-title">{children}</div>
      {root?.user ? (
        <Form method="post" action="/logout" className="app-header-user">
          <Link to="/settings" className="small">
            Settings
          </Link>
          <span className="muted" title="Signed in">
            {root.user.email}
          </span>
          <button type="submit" className="ghost">
            Sign out
          </button>
        </Form>
      ) : null}
    </header>
  );
}
