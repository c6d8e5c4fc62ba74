import { Form, Link } from "@remix-run/react";
import { runDetailHref } from "./run-history";
import { RelativeTime } from "~/components/relative-time";
import type { WebhookDeliveryView, WebhookView } from "~/models/webhooks.server";

const MAX_URL_CHARS = 2_000;

export type WebhookNotice =
  { kind: "added"; url: string; secret: string } | { kind: "error"; message: string } | { kind: "deleted" };

/**
 * The project's completion webhooks: add a URL (its secret is shown this
 * once), see the latest deliveries of each with their status, delete one.
 */
export function WebhooksPanel({
  webhooks,
  notice,
  max,
}: {
  webhooks: WebhookView[];
  notice: WebhookNotice | null;
  max: number;
}) {
  return (
    <div className="webhooks-panel">
      <p className="hint">
        When a run ends (complete, failed or stopped), Dyno POSTs a JSON payload to each URL, signed with the
        webhook&apos;s secret in the <code>Dyno-Signature</code> header (<code>t=…,v1=…</code>, an HMAC-SHA256 of{" "}
        <code>&lt;t&gt;.&lt;body&gt;</code>). A failed delivery is tried again with growing waits.
      </p>
      {notice?.kind === "added" ? (
        <div className="webhook-secret" role="status">
          <p>
            Added <code>{notice.url}</code>. Its secret, shown only this once: keep it where your receiver can read it.
          </p>
          <code className="secret" data-testid="webhook-secret">
            {notice.secret}
          </code>
        </div>
      ) : null}
      {notice?.kind === "error" ? (
        <p className="error" role="alert">
          {notice.message}
        </p>
      ) : null}
      {webhooks.length < max ? (
        // A new key once one is added: the form starts empty again.
        <Form
          key={notice?.kind === "added" ? notice.secret : "add"}
          method="post"
          className="webhook-add"
          preventScrollReset
        >
          <label htmlFor="webhook-url">Webhook URL</label>
          <input
            id="webhook-url"
            name="url"
            type="url"
            required
            maxLength={MAX_URL_CHARS}
            placeholder="https://example.com/hooks/dyno"
            autoComplete="off"
          />
          <button type="submit" name="intent" value="webhook-add">
            Add webhook
          </button>
        </Form>
      ) : (
        <p className="hint">This project has {max} webhooks, the most it may have.</p>
      )}
      {webhooks.length === 0 ? (
        <p className="empty">No webhooks yet.</p>
      ) : (
        <ul className="webhook-list">
          {webhooks.map((webhook) => (
            <li key={webhook.id} data-webhook-id={webhook.id}>
              <div className="webhook-head">
                <code className="webhook-url">{webhook.url}</code>
                <span className="hint">
                  added <RelativeTime date={webhook.createdAt} />
                </span>
                <Form method="post" preventScrollReset>
                  <input type="hidden" name="webhookId" value={webhook.id} />
                  <button type="submit" name="intent" value="webhook-delete" className="ghost small">
                    Delete
                  </button>
                </Form>
              </div>
              <Deliveries deliveries={webhook.deliveries} />
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Deliveries({ deliveries }: { deliveries: WebhookDeliveryView[] }) {
  if (deliveries.length === 0) return <p className="empty">No deliveries yet: one is made when a run ends.</p>;
  return (
    <div className="table-scroll">
      <table className="webhook-deliveries">
        <caption className="visually-hidden">Latest deliveries</caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last answer</th>
            <th scope="col">Last attempt</th>
          </tr>
        </thead>
        <tbody>
          {deliveries.map((d) => (
            <tr key={d.id} data-delivery-status={d.status}>
              <td>
                <Link to={runDetailHref(d.runId)} preventScrollReset>
                  {d.runPrompt}
                </Link>
              </td>
              <td>
                <span className={`delivery-status delivery-${d.status}`}>{d.status}</span>
              </td>
              <td>{d.attempts}</td>
              <td>{d.lastError ?? (d.lastStatusCode !== null ? `HTTP ${d.lastStatusCode}` : "—")}</td>
              <td>{d.lastAttemptAt ? <RelativeTime date={d.lastAttemptAt} /> : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
