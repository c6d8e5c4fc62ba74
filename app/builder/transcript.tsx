import Markdown from "react-markdown";
import remarkGfm from "remark-gfm";
import type { BuilderData } from "./builder.server";

type Message = BuilderData["transcript"][number];

/**
 * The conversation as the builder sees it. Assistant replies are Markdown
 * (react-markdown renders no raw HTML, so a reply cannot inject markup);
 * prompts are shown as typed; system notices (failed, stopped) stand apart.
 */
export function Transcript({ messages }: { messages: Message[] }) {
  if (messages.length === 0) {
    return (
      <div className="transcript-empty">
        <h2>What should we build?</h2>
        <p className="muted">
          Describe the app. The agent plans it, writes the files and runs commands in a sandbox; you watch every step
          and see it live on the right.
        </p>
      </div>
    );
  }
  return (
    <ol className="transcript" aria-label="Conversation">
      {messages.map((message) => (
        <li key={message.id} className={`message message-${message.role}`} data-role={message.role}>
          <span className="visually-hidden">{message.role === "user" ? "You:" : message.role === "assistant" ? "Agent:" : "Notice:"}</span>
          {message.role === "assistant" ? (
            <div className="markdown">
              <Markdown remarkPlugins={[remarkGfm]}>{message.content}</Markdown>
            </div>
          ) : (
            <p>{message.content}</p>
          )}
        </li>
      ))}
    </ol>
  );
}
