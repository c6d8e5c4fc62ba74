import { Form, Link, useNavigation } from "@remix-run/react";
import { MIN_PASSWORD_LENGTH } from "~/auth/limits";

/** The sign-in and sign-up form: plain HTML form posts, so it works before (or without) JavaScript. */
export function AuthForm({
  mode,
  redirectTo,
  error,
  email,
}: {
  mode: "login" | "signup";
  redirectTo: string;
  error?: string;
  email?: string;
}) {
  const navigation = useNavigation();
  const busy = navigation.state !== "idle" && navigation.formMethod === "POST";
  const title = mode === "login" ? "Sign in" : "Create your account";
  return (
    <main className="auth">
      <div className="auth-card">
        <p className="brand" aria-hidden="true">
          Dyno
        </p>
        <h1>{title}</h1>
        <p className="muted">Chat with a coding agent that builds and runs your web app in a sandbox.</p>
        <Form method="post" className="stack" aria-describedby={error ? "auth-error" : undefined}>
          <input type="hidden" name="redirectTo" value={redirectTo} />
          <div>
            <label htmlFor="email">Email</label>
            <input id="email" name="email" type="email" autoComplete="email" required defaultValue={email} autoFocus />
          </div>
          <div>
            <label htmlFor="password">Password</label>
            <input
              id="password"
              name="password"
              type="password"
              required
              minLength={MIN_PASSWORD_LENGTH}
              autoComplete={mode === "login" ? "current-password" : "new-password"}
              aria-describedby={mode === "signup" ? "password-hint" : undefined}
            />
            {mode === "signup" ? (
              <p id="password-hint" className="hint">
                At least {MIN_PASSWORD_LENGTH} characters.
              </p>
            ) : null}
          </div>
          {error ? (
            <p id="auth-error" role="alert" className="error">
              {error}
            </p>
          ) : null}
          <button type="submit" disabled={busy}>
            {busy ? (mode === "login" ? "Signing in…" : "Creating account…") : title}
          </button>
        </Form>
        <p className="muted switch">
          {mode === "login" ? (
            <>
              New here? <Link to={`/signup?${new URLSearchParams({ redirectTo })}`}>Create an account</Link>
            </>
          ) : (
            <>
              Already have an account? <Link to={`/login?${new URLSearchParams({ redirectTo })}`}>Sign in</Link>
            </>
          )}
        </p>
      </div>
    </main>
  );
}
