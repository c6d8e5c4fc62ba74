import { type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction, data } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import { requireUserId } from "~/auth/session.server";
import { AppHeader } from "~/components/app-header";
import { RelativeTime } from "~/components/relative-time";
import { db } from "~/db.server";
import { readForm } from "~/http/form.server";
import { MAX_API_KEY_CHARS, MAX_KEY_LABEL_CHARS, MAX_MODEL_KEYS, PROVIDER_NAMES } from "~/models/model-keys";
import { handleSettingsAction, listModelKeys } from "~/models/model-keys.server";
import settingsStyles from "~/styles/settings.css?url";

export const links = () => [{ rel: "stylesheet", href: settingsStyles }];

export const meta: MetaFunction = () => [{ title: "Settings · Dyno" }];

export async function loader({ request }: LoaderFunctionArgs) {
  const userId = await requireUserId(request);
  return { keys: await listModelKeys(db, userId), max: MAX_MODEL_KEYS, providers: PROVIDER_NAMES };
}

export async function action({ request }: ActionFunctionArgs) {
  const userId = await requireUserId(request);
  const result = await handleSettingsAction(db, userId, await readForm(request));
  return data(result, { status: "status" in result ? result.status : 200 });
}

export default function Settings() {
  const { keys, max, providers } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const navigation = useNavigation();
  const adding = navigation.formData?.get("intent") === "key-add";
  const addError = result && !result.ok && result.intent === "key-add" && "error" in result ? result.error : null;
  const otherError = result && !result.ok && result.intent !== "key-add" && "error" in result ? result.error : null;
  const added = result?.ok && result.intent === "key-add" ? result : null;
  return (
    <>
      <AppHeader>
        <nav aria-label="Breadcrumb" className="breadcrumb">
          <Link to="/projects">Projects</Link> <span aria-hidden="true">/</span> <h1>Settings</h1>
        </nav>
      </AppHeader>
      <main className="page">
        <section className="card" aria-labelledby="keys-title">
          <h2 id="keys-title">Your model keys</h2>
          <p className="hint">
            Use your own OpenAI or Anthropic key, or an OpenAI-compatible server, for your projects: pick its model on a
            project&apos;s page (under the prompt box). A key is stored encrypted and is never shown again after saving
            (only its last four characters), nor given to the agent&apos;s sandbox. Without a key of your own, projects
            use the models this server offers.
          </p>
          {otherError ? (
            <p className="error" role="alert">
              {otherError}
            </p>
          ) : null}
          {result && result.intent === "key-remove" && result.ok ? (
            <p className="notice" role="status">
              {result.message}
            </p>
          ) : null}
          {keys.length === 0 ? (
            <p className="empty">No keys yet.</p>
          ) : (
            <ul className="key-list">
              {keys.map((key) => {
                const justChecked = result?.intent === "key-check" && "keyId" in result && result.keyId === key.id;
                const check = justChecked ? { ok: result.ok, message: result.message } : key.lastCheck;
                return (
                  <li key={key.id} data-key-id={key.id}>
                    <div className="key-head">
                      <strong>{key.label}</strong>
                      <span className="muted">{key.providerName}</span>
                      <code data-testid="key-hint">{key.hint ?? "no key"}</code>
                      <div className="key-actions">
                        <Form method="post" preventScrollReset>
                          <input type="hidden" name="keyId" value={key.id} />
                          <button type="submit" name="intent" value="key-check" className="ghost small">
                            Check connection
                          </button>
                        </Form>
                        <Form method="post" preventScrollReset>
                          <input type="hidden" name="keyId" value={key.id} />
                          <button type="submit" name="intent" value="key-remove" className="ghost small">
                            Remove
                          </button>
                        </Form>
                      </div>
                    </div>
                    <span className="hint key-detail">
                      Models: {key.models.join(", ")}
                      {key.baseUrl ? (
                        <>
                          {" "}
                          · at <code>{key.baseUrl}</code>
                        </>
                      ) : null}{" "}
                      · added <RelativeTime date={key.createdAt} />
                    </span>
                    {check ? (
                      <span
                        className={`key-detail ${check.ok ? "check-ok" : "check-bad"}`}
                        role={justChecked ? "status" : undefined}
                        data-testid="key-check"
                      >
                        {check.ok ? "✓ " : "✗ "}
                        {check.message}
                      </span>
                    ) : null}
                  </li>
                );
              })}
            </ul>
          )}
        </section>

        <section className="card" aria-labelledby="add-key-title">
          <h2 id="add-key-title">Add a key</h2>
          {added ? (
            <p className="notice" role="status">
              {added.message} Pick its model on a project&apos;s page.
            </p>
          ) : null}
          {addError ? (
            <p className="error" role="alert">
              {addError}
            </p>
          ) : null}
          {keys.length >= max ? (
            <p className="hint">You have {max} keys, the most you may have: remove one first.</p>
          ) : (
            // A fresh form after each added key: the key field must not keep what was pasted.
            <Form key={added?.keyId ?? "add"} method="post" className="key-add" autoComplete="off">
              <label>
                Provider
                <select name="provider" defaultValue="openai" required>
                  {Object.entries(providers).map(([value, name]) => (
                    <option key={value} value={value}>
                      {name}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Name (optional)
                <input name="label" maxLength={MAX_KEY_LABEL_CHARS} placeholder="Work key" />
              </label>
              <label>
                API key
                <input
                  name="apiKey"
                  type="password"
                  maxLength={MAX_API_KEY_CHARS}
                  placeholder="sk-…"
                  autoComplete="new-password"
                  spellCheck={false}
                />
              </label>
              <label>
                Models (comma-separated)
                <input name="models" required placeholder="gpt-4.1, gpt-4.1-mini" spellCheck={false} />
              </label>
              <label>
                Base URL (OpenAI-compatible only)
                <input name="baseUrl" type="url" placeholder="https://llm.example.com/v1" spellCheck={false} />
              </label>
              <div className="key-add-submit">
                <button type="submit" name="intent" value="key-add" disabled={adding}>
                  {adding ? "Adding…" : "Add key"}
                </button>
                <span className="hint">An OpenAI-compatible server may need no key (e.g. a local Ollama).</span>
              </div>
            </Form>
          )}
        </section>
      </main>
    </>
  );
}
