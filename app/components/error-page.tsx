import { Link, useLocation } from "@remix-run/react";
import { AppHeader } from "./app-header";

/** The page for an address that names nothing the signed-in builder may see (a 404). */
export function NotFoundPage() {
  const { pathname } = useLocation();
  return (
    <ErrorLayout title="Page not found">
      <p>
        There is no page at <code className="error-path">{pathname}</code>, or it is not yours to see.
      </p>
    </ErrorLayout>
  );
}

/**
 * Any other error. `detail` is a message the app wrote for builders (the text
 * of a Response it threw); anything else stays in the server's log.
 */
export function ErrorPage({ status, detail }: { status: number | null; detail: string | null }) {
  return (
    <ErrorLayout title={status && status < 500 ? "That did not work" : "Something went wrong"} status={status ?? 500}>
      <p>
        {detail ??
          "Dyno could not show this page. Try again in a moment; if it keeps happening, the server's log says why."}
      </p>
    </ErrorLayout>
  );
}

function ErrorLayout({ title, status = 404, children }: { title: string; status?: number; children: React.ReactNode }) {
  return (
    <>
      <AppHeader />
      <main className="page">
        <section className="card error-card" aria-labelledby="error-title">
          <p className="error-status">Error {status}</p>
          <h1 id="error-title">{title}</h1>
          {children}
          <p>
            <Link to="/projects" className="button">
              Back to your projects
            </Link>
          </p>
        </section>
      </main>
    </>
  );
}
