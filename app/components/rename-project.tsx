import { Form } from "@remix-run/react";
import { MAX_TITLE_CHARS } from "~/models/project-title";

/**
 * Rename, as a disclosure with a plain form (works without JavaScript), on
 * the project list and the builder page. The server checks the title too: a
 * blank one comes back as `error`, shown here with the form kept open.
 */
export function RenameProject({ projectId, title, error }: { projectId: string; title: string; error?: string }) {
  return (
    // Keyed on the title: a successful rename re-mounts it closed.
    <details className="popover" key={title} open={error ? true : undefined}>
      <summary>Rename</summary>
      <Form method="post" className="inline-form popover-panel">
        <input type="hidden" name="projectId" value={projectId} />
        <label htmlFor={`title-${projectId}`} className="visually-hidden">
          New title for {title}
        </label>
        <input id={`title-${projectId}`} name="title" defaultValue={title} maxLength={MAX_TITLE_CHARS} required />
        <button type="submit" name="intent" value="rename">
          Save
        </button>
        {error ? (
          <p role="alert" className="error popover-error">
            {error}
          </p>
        ) : null}
      </Form>
    </details>
  );
}
