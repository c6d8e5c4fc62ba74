import { Form, useNavigation } from "@remix-run/react";
import { useEffect, useRef } from "react";
import { MAX_PROMPT_CHARS } from "~/models/prompt";

/**
 * The chat box. Enter sends, Shift+Enter starts a new line; Build lets the
 * agent change files, Ask only reads. While a run works, what is sent is
 * queued for the agent's next step (steerHint says so); while it stops, the
 * box is disabled and says why. With no
 * usable model it is disabled too, and one notice says what to set and
 * offers the offline demo instead.
 */
export function PromptBox({
  busyReason,
  steerHint = null,
  modelProblem,
  error,
  sentOk,
}: {
  busyReason: string | null;
  /** A run is working: a message sent now is queued for its next step, so mode and demos do not apply. */
  steerHint?: string | null;
  /** Why prompts cannot run (no model, or an incomplete one); null when they can. */
  modelProblem: string | null;
  error?: string;
  /** Bumped after a prompt was accepted: the box clears. */
  sentOk: number;
}) {
  const navigation = useNavigation();
  const submitting =
    navigation.state === "submitting" && /^(prompt|demo)(:|$)/.test(String(navigation.formData?.get("intent")));
  const textarea = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (sentOk && textarea.current) textarea.current.value = "";
  }, [sentOk]);
  const disabled = Boolean(busyReason) || submitting;
  const steering = steerHint !== null;
  const noModel = modelProblem !== null;
  // The notice already says why a prompt was refused: an alert with the same words would say it twice.
  const shownError = error && error !== modelProblem ? error : undefined;
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
        disabled={disabled || noModel}
        aria-describedby={noModel ? "no-model" : "prompt-help"}
        placeholder={
          busyReason
            ? ""
            : noModel
              ? "Prompts need a model: see below."
              : steering
                ? "Add something for the agent's next step…"
                : "Describe what to build or change…"
        }
        onKeyDown={(event) => {
          // Esc stops a run from anywhere on the page, but not while a message for it is being written here.
          if (event.key === "Escape" && event.currentTarget.value.trim()) event.preventDefault();
          if (event.key !== "Enter" || event.shiftKey || event.nativeEvent.isComposing) return;
          event.preventDefault();
          if (event.currentTarget.value.trim()) event.currentTarget.form?.requestSubmit();
        }}
      />
      <div className="prompt-row">
        <fieldset className="mode-switch" disabled={disabled || noModel || steering}>
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
          {busyReason ??
            steerHint ??
            (noModel ? null : (
              <>
                <kbd>Enter</kbd> to send, <kbd>Shift</kbd>+<kbd>Enter</kbd> for a new line
              </>
            ))}
        </p>
        <button type="submit" name="intent" value="prompt" disabled={disabled || noModel}>
          {submitting ? "Sending…" : steering ? "Queue" : "Send"}
        </button>
      </div>
      {shownError ? (
        <p role="alert" className="error">
          {shownError}
        </p>
      ) : null}
      {noModel ? (
        <NoModelNotice problem={modelProblem} demoDisabled={disabled || steering} />
      ) : (
        <p className="hint demo-buttons">
          <button
            type="submit"
            name="intent"
            value="demo"
            className="ghost small"
            formNoValidate
            disabled={disabled || steering}
          >
            Run the offline demo (replay, no model)
          </button>
          <button
            type="submit"
            name="intent"
            value="demo:vite-react"
            className="ghost small"
            formNoValidate
            disabled={disabled || steering}
            title="A replay that installs packages from the npm registry and starts a Vite dev server"
          >
            Vite + React demo (replay, installs packages)
          </button>
        </p>
      )}
    </Form>
  );
}

/** The one message a builder sees with no usable model: what to set, and the demo meanwhile. */
function NoModelNotice({ problem, demoDisabled }: { problem: string; demoDisabled: boolean }) {
  // An incomplete setting (AGENT_MODEL without its key, say) is named; with none at all the list below says it.
  const unset = problem.startsWith("No model is configured");
  return (
    <div id="no-model" className="no-model" role="status">
      <p>
        <strong>No model is configured</strong>, so the agent cannot take prompts here yet.
        {unset ? null : <> {problem}</>}
      </p>
      <p>To use one, set these in Dyno&apos;s environment and restart it:</p>
      <ul>
        <li>
          <code>AGENT_MODEL=openai/gpt-4.1</code> with <code>OPENAI_API_KEY</code>
        </li>
        <li>
          <code>AGENT_MODEL=anthropic/claude-sonnet-4-5</code> with <code>ANTHROPIC_API_KEY</code>
        </li>
        <li>
          <code>AGENT_MODEL=openai-compatible/&lt;model&gt;</code> with <code>AGENT_BASE_URL</code> (Ollama, vLLM…)
        </li>
      </ul>
      <p>
        The <em>Models</em> section of Dyno&apos;s <code>README.md</code> has the details. Meanwhile, watch the agent
        work on a replay of a recorded session: a static todo page (needs no network), or a Vite + React app whose
        packages come from the npm registry and whose dev server runs in the preview.
      </p>
      <p className="demo-buttons">
        <button type="submit" name="intent" value="demo" formNoValidate disabled={demoDisabled}>
          Run the offline demo
        </button>
        <button
          type="submit"
          name="intent"
          value="demo:vite-react"
          className="ghost"
          formNoValidate
          disabled={demoDisabled}
        >
          Vite + React demo (installs packages)
        </button>
      </p>
    </div>
  );
}
