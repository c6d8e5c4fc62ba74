import { eventType } from "inngest";
import { z } from "zod";

/** Sent by the chat action once the run row exists; the run id is also the event id. */
export const agentPrompt = eventType("agent/prompt", {
  schema: z.object({
    runId: z.string().uuid(),
    projectId: z.string().uuid(),
    userId: z.string().uuid(),
    prompt: z.string(),
    mode: z.enum(["build", "ask"]),
  }),
});

/** Stops a run: matched against the prompt event by runId in the function's cancelOn. */
export const agentStop = eventType("agent/stop", {
  schema: z.object({
    runId: z.string().uuid(),
    projectId: z.string().uuid(),
  }),
});

export type AgentPromptData = z.infer<typeof agentPrompt.schema>;
export type AgentStopData = z.infer<typeof agentStop.schema>;

/** Sent once a run has ended (complete, failed, stopped), the event id `run-ended-<runId>`: webhooks hear it. */
export const runEnded = eventType("run/ended", {
  schema: z.object({
    runId: z.string().uuid(),
    projectId: z.string().uuid(),
    status: z.enum(["complete", "failed", "stopped"]),
  }),
});

export type RunEndedData = z.infer<typeof runEnded.schema>;

/**
 * Sent by the History view's export once the remote's row says "pushing"; the event id is
 * `export-<projectId>-<requestedAt ms>`, so a resent event is one push. It names no URL and no token: the
 * function reads the row, and opens the token only inside its step.
 */
export const exportRequested = eventType("versions/export.requested", {
  schema: z.object({
    projectId: z.string().uuid(),
    /** pushRequestedAt of the row, ISO: a push whose row has since been asked again is skipped. */
    requestedAt: z.string(),
    number: z.number().int(),
  }),
});

export type ExportRequestedData = z.infer<typeof exportRequested.schema>;
