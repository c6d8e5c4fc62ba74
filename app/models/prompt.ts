import { z } from "zod";

/** Shared by the prompt form (browser) and the chat action (server). */
export const MAX_PROMPT_CHARS = 20_000;

export const PromptInput = z.object({
  prompt: z
    .string()
    .trim()
    .min(1, "Write a prompt first.")
    .max(MAX_PROMPT_CHARS, `Prompts are limited to ${MAX_PROMPT_CHARS.toLocaleString("en")} characters.`),
  mode: z.enum(["build", "ask"]).default("build"),
  maxIterations: z.coerce.number().int().min(1).max(500).optional(),
});
export type PromptInput = z.input<typeof PromptInput>;
