import { z } from "zod";

/** Shared by the project forms (browser) and the server's checks. */
export const MAX_TITLE_CHARS = 80;

const GIVE_A_TITLE = "Give the project a title.";

/**
 * A project's title, as the server stores it: line breaks, tabs and other
 * control characters become spaces, runs of spaces one, and a title with
 * nothing visible in it (blank, or only invisible characters) is refused.
 */
export const ProjectTitle = z
  .string({ message: GIVE_A_TITLE })
  .transform((title) => title.replace(/[\p{Cc}\s]+/gu, " ").trim())
  .pipe(
    z
      .string()
      .refine((title) => /[^\p{Cf}\p{Z}]/u.test(title), GIVE_A_TITLE)
      .refine((title) => title.length <= MAX_TITLE_CHARS, `Keep the title under ${MAX_TITLE_CHARS} characters.`),
  );
