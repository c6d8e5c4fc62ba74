import { Form, useNavigation } from "@remix-run/react";
import { useEffect, useRef } from "react";
import { MAX_PROMPT_CHARS } from "~/models/prompt";

/**
 * The chat box. Enter sends, Shift+Enter starts a new line; Build lets the
 * agent change files, Ask only reads. While a run is active the box is
 * disabled and says why (the server refuses a second prompt too).
 */
export function PromptBox({
  busyReason,
  modelConfigured,
  error,
  sentOk,
}: {
  busyReason: string | null;
  modelConfigured: boolean;
  error?: string;
  /** Bumped after a prompt was accepted: the box clears. */
  sentOk: number;
}) {
  const navigation = useNavigation();
  const submitting = navigation.state === "submitting" && ["prompt", "demo"].includes(String(navigation.formData?.get("intent")));
  const textarea = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (sentOk && textarea.current) textarea.current.value = "";
  }, [sentOk]);
  const disabled = Boolean(busyReason) || submitting;
  return (
    <Form method="post" className="prompt-box" aria-label="Send a prompt">
      <label htmlFor="prompt" className="visually-hidden">
        Prompt
      </label>
      <textarea
        id="prompt"
        name="prompt"
        ref={textarea}
        required
        maxLength={MAX_PROMPT_CHARS}
        rows={3}
        disabled={disabled}
        aria-describedby="prompt-help"
        placeholder={busyReason ? "" : "Describe what to build or change…"}
        onKeyDown={(event) => {
          if (event.key !== "Enter" || event.shiftKey || event.nativeEvent.isComposing) return;
          event.preventDefault();
          if (event.currentTarget.value.trim()) event.currentTarget.form?.requestSubmit();
        }}
      />
      <div className="prompt-row">
        <fieldset className="mode-switch" disabled={disabled}>
          <legend className="visually-hidden">Mode</legend>
          <input type="radio" id="mode-build" name="mode" value="build" defaultChecked />
          <label htmlFor="mode-build" title="The agent may change files and run commands">
            Build
          </label>
          <input type="radio" id="mode-ask" name="mode" value="ask" />
          <label htmlFor="mode-ask" title="The agent only reads and answers">
            Ask
          </label>
        </fieldset>
        <p id="prompt-help" className="hint">
          {busyReason ?? (
            <>
              <kbd>Enter</kbd> to send, <kbd>Shift</kbd>+<kbd>Enter</kbd> for a new line
            </>
          )}
        </p>
        <button type="submit" name="intent" value="prompt" disabled={disabled}>
          {submitting ? "Sending…" : "Send"}
        </button>
      </div>
      {error ? (
        <p role="alert" className="error">
          {error}
        </p>
      ) : null}
      {!modelConfigured ? (
        <p className="hint no-model">
          No model is configured (set <code>AGENT_MODEL</code>, see the README), so prompts are refused. Try the offline
          demo: a replay of a recorded session that builds a todo page.{" "}
          <button type="submit" name="intent" value="demo" className="ghost small" formNoValidate disabled={disabled}>
            Run the offline demo
          </button>
        </p>
      ) : (
        <p className="hint">
          <button type="submit" name="intent" value="demo" className="ghost small" formNoValidate disabled={disabled}>
            Run the offline demo (replay, no model)
          </button>
        </p>
      )}
    </Form>
  );
}
