import { z } from "zod";

/**
 * Every environment variable Dyno reads, parsed and validated in one place.
 * The README's configuration table mirrors this schema.
 */
const EnvSchema = z.object({
  NODE_ENV: z
    .enum(["development", "production", "test"])
    .default("development"),
  HOST: z.string().default("127.0.0.1"),
  PORT: z.coerce.number({ message: "a port number" }).int().min(0).max(65535).default(3000),

  /** postgres:// URL. Unset: embedded PGlite under DYNO_DATA_DIR. */
  DATABASE_URL: z
    .string()
    .url()
    .refine((u) => /^postgres(ql)?:\/\//.test(u), "must be a postgres:// URL")
    .optional()
    .or(z.literal("").transform(() => undefined)),
  DYNO_DATA_DIR: z.string().default(".data"),

  /** Inngest SDK settings (the SDK's own names). */
  INNGEST_DEV: z.string().optional(),
  INNGEST_BASE_URL: z.string().url().optional(),
  INNGEST_EVENT_KEY: z.string().optional(),
  INNGEST_SIGNING_KEY: z.string().optional(),

  /** Agent bounds. */
  AGENT_MAX_ITERATIONS: z.coerce.number().int().min(1).max(500).default(50),
  AGENT_RUN_TIMEOUT: z
    .string()
    .regex(/^\d+[smhd]$/, "a duration such as 90m or 2h")
    .default("2h"),
  /** Foundation skeleton only: how long a placeholder iteration takes. */
  AGENT_PLACEHOLDER_STEP_MS: z.coerce.number().int().min(0).max(60_000).default(200),
}).superRefine((env, ctx) => {
  if (env.NODE_ENV !== "production" || isInngestDev(env)) return;
  for (const key of ["INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"] as const) {
    if (!env[key]) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: [key],
        message: "required in production (Inngest Cloud or self-hosted `inngest start`); or set INNGEST_DEV=1 for a local dev server",
      });
    }
  }
});

export type Env = z.infer<typeof EnvSchema>;

/** Whether the SDK talks to a local dev server (INNGEST_DEV=1, or the engine's URL). */
export function isInngestDev(env: Pick<Env, "INNGEST_DEV">): boolean {
  return env.INNGEST_DEV !== undefined && !["", "0", "false"].includes(env.INNGEST_DEV);
}

export function parseEnv(source: Record<string, string | undefined> = process.env): Env {
  const parsed = EnvSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `  ${i.path.join(".")}: ${i.message}`)
      .join("\n");
    throw new Error(`Invalid environment:\n${problems}`);
  }
  return parsed.data;
}

const DURATION_UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds in a duration such as "90m" (the format AGENT_RUN_TIMEOUT is checked against). */
export function durationMs(duration: string): number {
  const match = /^(\d+)([smhd])$/.exec(duration);
  if (!match) throw new Error(`not a duration: ${duration}`);
  return Number(match[1]) * DURATION_UNIT_MS[match[2] as keyof typeof DURATION_UNIT_MS];
}

let cached: Env | undefined;

/** The validated environment, parsed on first use. */
export function env(): Env {
  cached ??= parseEnv();
  return cached;
}
