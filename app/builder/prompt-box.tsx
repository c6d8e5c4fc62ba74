import { Form, Link, useNavigation } from "@remix-run/react";
import { useEffect, useRef, useState } from "react";
import { MAX_PROMPT_CHARS } from "~/models/prompt";
import { ACCEPTED_IMAGE_TYPES, humanSize } from "~/models/prompt-images";

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
  keptPrompt,
  imageLimits,
}: {
  busyReason: string | null;
  /** A run is working: a message sent now is queued for its next step, so mode and demos do not apply. */
  steerHint?: string | null;
  /** Why prompts cannot run (no model, or an incomplete one); null when they can. */
  modelProblem: string | null;
  error?: string;
  /** Bumped after a prompt was accepted: the box clears. */
  sentOk: number;
  /** The text of a refused prompt (the server gives it back): the box shows it again, even without JavaScript. */
  keptPrompt?: string;
  /** Images a prompt may carry (decision 036); none offered when maxCount is 0. */
  imageLimits?: { maxBytes: number; maxCount: number };
}) {
  const navigation = useNavigation();
  const submitting =
    navigation.state === "submitting" && /^(prompt|demo)(:|$)/.test(String(navigation.formData?.get("intent")));
  const textarea = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const [chosen, setChosen] = useState<Array<{ name: string; size: number }>>([]);
  useEffect(() => {
    if (sentOk && textarea.current) textarea.current.value = "";
    if (sentOk && fileInput.current) fileInput.current.value = "";
    if (sentOk) setChosen([]);
  }, [sentOk]);
  const maxImages = imageLimits?.maxCount ?? 0;
  const maxBytes = imageLimits?.maxBytes ?? 0;
  // Told before sending; the server checks again (and checks what each file really is).
  const chosenProblem =
    chosen.length > maxImages
      ? `At most ${maxImages} images can go with one prompt.`
      : chosen.find((file) => file.size > maxBytes)
        ? `“${chosen.find((file) => file.size > maxBytes)!.name}” is over ${humanSize(maxBytes)}.`
        : null;
  const disabled = Boolean(busyReason) || submitting;
  const steering = steerHint !== null;
  const noModel = modelProblem !== null;
  // The notice already says why a prompt was refused: an alert with the same words would say it twice.
  const shownError = error && error !== modelProblem ? error : undefined;
  return (
    <Form method="post" encType="multipart/form-data" className="prompt-box" aria-label="Send a prompt">
      <label htmlFor="prompt" className="visually-hidden">
        Prompt
      </label>
      <textarea
        id="prompt"
        name="prompt"
        ref={textarea}
        defaultValue={keptPrompt}
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
        {maxImages > 0 ? (
          <span className="attach">
            <input
              ref={fileInput}
              type="file"
              id="prompt-images"
              name="images"
              accept={ACCEPTED_IMAGE_TYPES}
              multiple
              className="attach-input"
              // A message to a working run carries text only (decision 036).
              disabled={disabled || noModel || steering}
              aria-describedby="attach-help"
              onChange={(event) =>
                setChosen([...(event.currentTarget.files ?? [])].map((f) => ({ name: f.name, size: f.size })))
              }
            />
            <label htmlFor="prompt-images" className="attach-label" title="Attach screenshots or mockups">
              Attach images
            </label>
          </span>
        ) : null}
        <button type="submit" name="intent" value="prompt" disabled={disabled || noModel}>
          {submitting ? "Sending…" : steering ? "Queue" : "Send"}
        </button>
      </div>
      {maxImages > 0 ? (
        <div id="attach-help" className="hint attach-help">
          {chosen.length > 0 ? (
            <ul className="attach-list" aria-label="Images to send">
              {chosen.map((file, i) => (
                <li key={i}>
                  {file.name} <span className="muted">({humanSize(file.size)})</span>
                </li>
              ))}
            </ul>
          ) : null}
          {chosenProblem ? (
            <span className="error">{chosenProblem}</span>
          ) : steering ? (
            <span>Images go with a new prompt, once the agent has finished (or been stopped).</span>
          ) : (
            <span>
              Up to {maxImages} images (PNG, JPEG, WebP or GIF), {humanSize(maxBytes)} each.
            </span>
          )}
        </div>
      ) : null}
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
      <p>
        Add your own key in <Link to="/settings">Settings</Link> (OpenAI, Anthropic or an OpenAI-compatible server),
        then pick it for this project. Or set these in Dyno&apos;s environment and restart it:
      </p>
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
