import { Fragment } from "react";
import Markdown from "react-markdown";
import remarkGfm from "remark-gfm";
import type { BuilderData } from "./builder.server";
import { runDetailHref } from "./run-history";
import { SteerMessage } from "./steer-message";
import { humanSize, imageHref } from "~/models/prompt-images";

type Message = BuilderData["transcript"][number];

/**
 * The conversation as the builder sees it. Assistant replies are Markdown
 * (react-markdown renders no raw HTML, so a reply cannot inject markup);
 * prompts are shown as typed; system notices (failed, stopped) stand apart.
 * An earlier prompt links to its run's detail: its card gave way to the
 * latest run's, and its steps, outputs and files are still one click away.
 */
export function Transcript({
  projectId,
  messages,
  steering = [],
  live,
}: {
  /** The project whose images the thumbnails show. */
  projectId: string;
  messages: Message[];
  /** Messages sent while a run worked: each shows under its run's prompt (and live card). */
  steering?: BuilderData["steering"];
  live?: { runId: string; card: React.ReactNode };
}) {
  const steeringOf = (runId: string | null) =>
    runId ? steering.filter((s) => s.runId === runId).map((s) => <SteerMessage key={s.id} steer={s} />) : null;
  // The live card sits under its prompt, above the reply it leads to.
  const anchor = live ? messages.findIndex((m) => m.role === "user" && m.runId === live.runId) : -1;
  if (messages.length === 0 && !live) {
    return (
      <div className="transcript-empty">
        <h2>What should we build?</h2>
        <p className="muted">
          Describe the app. The agent plans it, writes the files and runs commands in a sandbox; you watch every step
          and see the result live in the preview.
        </p>
      </div>
    );
  }
  return (
    <ol className="transcript" aria-label="Conversation">
      {messages.map((message, index) => (
        <Fragment key={message.id}>
          <li className={`message message-${message.role}`} data-role={message.role}>
            <span className="visually-hidden">
              {message.role === "user" ? "You:" : message.role === "assistant" ? "Agent:" : "Notice:"}
            </span>
            {message.role === "assistant" ? (
              <div className="markdown">
                <Markdown remarkPlugins={[remarkGfm]}>{message.content}</Markdown>
              </div>
            ) : (
              <p>{message.content}</p>
            )}
            {message.images?.length ? (
              <ul className="message-images" aria-label="Attached images">
                {message.images.map((image) => (
                  <li key={image.id}>
                    <a href={imageHref(projectId, image.id)} target="_blank" rel="noopener noreferrer">
                      <img
                        src={imageHref(projectId, image.id)}
                        alt={`Attached image ${image.name}`}
                        loading="lazy"
                        decoding="async"
                      />
                    </a>
                    <span className="image-caption">
                      {image.name} · {humanSize(image.size)}
                    </span>
                  </li>
                ))}
              </ul>
            ) : null}
            {message.role === "user" && message.runId && message.runId !== live?.runId ? (
              <a className="run-link" href={runDetailHref(message.runId)}>
                Steps and files
              </a>
            ) : null}
          </li>
          {index === anchor ? <li className="live-slot">{live?.card}</li> : null}
          {message.role === "user" ? steeringOf(message.runId) : null}
        </Fragment>
      ))}
      {live && anchor < 0 ? <li className="live-slot">{live.card}</li> : null}
    </ol>
  );
}
