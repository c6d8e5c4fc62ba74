import { Form, Link } from "@remix-run/react";
import type { ModelOption, ModelPicker } from "~/models/model-keys.server";

/** A saved choice no longer offered (its key removed, the server's list changed): shown, not silently replaced. */
function Stale({ picker, value }: { picker: ModelPicker; value: string }) {
  const offered = [...picker.server, ...picker.keys.flatMap((k) => k.options)].some((o) => o.value === value);
  if (!value || offered) return null;
  return (
    // Not disabled: a disabled option is left out of the form, and saving the fallback alone would reset the model.
    <option value={value}>
      {value.startsWith("key:") ? "A model of a removed key" : value.replace(/^server:/, "")} (no longer available)
    </option>
  );
}

function Options({ picker }: { picker: ModelPicker }) {
  const option = (o: ModelOption) => (
    <option key={o.value} value={o.value} disabled={o.problem !== null} title={o.problem ?? undefined}>
      {o.label}
      {o.problem ? " (not configured)" : ""}
    </option>
  );
  return (
    <>
      {picker.server.length > 0 ? <optgroup label="This server's models">{picker.server.map(option)}</optgroup> : null}
      {picker.keys.map((k) => (
        <optgroup key={k.label} label={k.label}>
          {k.options.map(option)}
        </optgroup>
      ))}
    </>
  );
}

/**
 * The project's model and fallback (decision 034): the server's models and the builder's own keys' models. A
 * <details> under the prompt box, so it works without JavaScript and takes one line until opened.
 */
export function ModelPickerForm({
  picker,
  notice,
}: {
  picker: ModelPicker;
  notice: { ok: boolean; message: string } | null;
}) {
  return (
    <details className="model-picker" open={notice !== null}>
      <summary data-testid="model-summary">Model: {picker.summary}</summary>
      <Form method="post" preventScrollReset>
        <label htmlFor="model-choice">
          <span>Model</span>
          <select id="model-choice" name="model" defaultValue={picker.model}>
            <option value="">Server default{picker.defaultLabel ? ` (${picker.defaultLabel})` : ""}</option>
            <Stale picker={picker} value={picker.model} />
            <Options picker={picker} />
          </select>
        </label>
        <label htmlFor="fallback-choice">
          <span>Fallback</span>
          <select id="fallback-choice" name="fallback" defaultValue={picker.fallback}>
            <option value="">None</option>
            <Stale picker={picker} value={picker.fallback} />
            <Options picker={picker} />
          </select>
        </label>
        <button type="submit" name="intent" value="model-set" className="small">
          Save
        </button>
      </Form>
      {notice ? (
        <p className={notice.ok ? "notice" : "error"} role={notice.ok ? "status" : "alert"}>
          {notice.message}
        </p>
      ) : null}
      <p className="hint">
        The fallback is tried when the model fails. <Link to="/settings">Add your own API key</Link> to use your
        provider account.
      </p>
    </details>
  );
}
