import { z } from "zod";

/** Shared by the project forms (browser) and the server's checks. */
export const MAX_TITLE_CHARS = 80;

export const ProjectTitle = z
  .string({ message: "Give the project a title." })
  .trim()
  .min(1, "Give the project a title.")
  .max(MAX_TITLE_CHARS, `Keep the title under ${MAX_TITLE_CHARS} characters.`);
