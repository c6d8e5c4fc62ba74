import { z } from "zod";
import { parseAllowList } from "../sandbox/egress/policy";
import { parsePreviewOriginTemplate } from "./preview-origin.server";

/**
 * Every environment variable Dyno reads, parsed and validated in one place.
 * The README's configuration table mirrors this schema.
 */
const duration = (fallback: string) =>
  z
    .string()
    .regex(/^\d+[smhd]$/, "a duration such as 45s, 90m or 2h")
    .default(fallback);

/** Hosts that listen on every interface: they say nothing about the address the engine should call. */
export const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);

function isHttpOrigin(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return /^https?:$/.test(url.protocol) && url.pathname === "/" && !url.search && !url.hash && !url.username;
}

/** A size such as 512m, 1g or 1.5g (k, m, g: powers of 1024; no unit: bytes), parsed to bytes. */
const size = (fallback: string) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?[kmg]?$/i, "a size such as 512m or 1g")
    .default(fallback)
    .transform((value) => {
      const unit = value.slice(-1).toLowerCase();
      const power = { k: 1, m: 2, g: 3 }[unit] ?? 0;
      return Math.round(parseFloat(value) * 1024 ** power);
    });
const optionalString = () =>
  z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined));

const EnvSchema = z
  .object({
    NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
    HOST: z.string().default("127.0.0.1"),
    /**
     * How many reverse proxies (nginx, a load balancer) stand in front of the app and append to X-Forwarded-For:
     * the client's address (rate limits) and scheme are read through that many hops. 0: the socket's own peer, and
     * forwarded headers are ignored (a client could write them itself).
     */
    TRUST_PROXY: z.coerce
      .number({ message: "a number of proxy hops (0-10)" })
      .int("a number of proxy hops (0-10)")
      .min(0, "a number of proxy hops (0-10)")
      .max(10, "a number of proxy hops (0-10)")
      .default(0),
    PORT: z.coerce.number({ message: "a port number" }).int().min(0).max(65535).default(3000),
    /**
     * The builder's public origin as browsers see it (e.g. https://dyno.example.com): writes must come from it.
     * Unset: the request's own scheme and Host (so a reverse proxy must pass Host; behind TLS termination set this).
     */
    APP_ORIGIN: z
      .string()
      .url()
      .transform((u) => new URL(u).origin)
      .refine((o) => /^https?:\/\//.test(o), "an http:// or https:// origin")
      .optional()
      .or(z.literal("").transform(() => undefined)),

    /** postgres:// URL. Unset: embedded PGlite under DYNO_DATA_DIR. */
    DATABASE_URL: z
      .string()
      .url()
      .refine((u) => /^postgres(ql)?:\/\//.test(u), "must be a postgres:// URL")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    DYNO_DATA_DIR: z.string().default(".data"),

    /**
     * Signs session cookies and preview links. Required in production; in
     * development a random one is kept in DYNO_DATA_DIR/session-secret.
     */
    SESSION_SECRET: z
      .string()
      .min(32, "at least 32 characters")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** The preview server's port: built apps are served from a separate origin. Unset: PORT + 1 (0 with PORT=0). */
    PREVIEW_PORT: z.coerce.number({ message: "a port number" }).int().min(0).max(65535).optional(),
    /**
     * Preview origins (decision 021): a wildcard origin, one host per project, e.g. https://*.preview.example.com
     * (wildcard DNS and certificate, a reverse proxy passing Host to PREVIEW_PORT). Unset: http://*.localhost:PREVIEW_PORT.
     */
    PREVIEW_ORIGIN: z
      .string()
      .superRefine((value, ctx) => {
        if (!value) return;
        try {
          parsePreviewOriginTemplate(value);
        } catch (error) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: (error as Error).message });
        }
      })
      .optional()
      .transform((v) => (v ? v.trim().replace(/\/+$/, "") : undefined)),

    /** Inngest SDK settings (the SDK's own names). */
    INNGEST_DEV: z.string().optional(),
    INNGEST_BASE_URL: z.string().url().optional(),
    INNGEST_EVENT_KEY: z.string().optional(),
    INNGEST_SIGNING_KEY: z.string().optional(),
    /**
     * The origin the engine calls the app at (e.g. http://app:3000): the only URL the app ever registers, whatever
     * Host a sync request names. Unset: the address the app server listens on (HOST:PORT, a wildcard HOST as
     * loopback); required in production when HOST is a wildcard (0.0.0.0, ::).
     */
    INNGEST_SERVE_ORIGIN: z
      .string()
      .url()
      .refine(isHttpOrigin, "an origin such as http://app:3000 (no path)")
      .transform((u) => new URL(u).origin)
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /**
     * 1: accept INNGEST_DEV in production (unsigned step calls run, errors carry stack traces). Refused without it;
     * with it, every start logs a warning.
     */
    DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION: z
      .enum(["", "0", "1", "false", "true"], { message: "1 or 0" })
      .optional()
      .transform((v) => v === "1" || v === "true"),

    /**
     * How often the app checks its active runs against the engine and ends the
     * ones the engine lost (as failed, with Retry). Also checked at startup and
     * by Stop. 0s: only at startup and by Stop.
     */
    RUN_RECONCILE_INTERVAL: duration("1m"),
    /** How long a run, or an end the engine reported, must have stood before the check acts on it. */
    RUN_RECONCILE_GRACE: duration("1m"),
    /**
     * How live event streams learn of new run events (decision 028): "shared", one read per new row per project for
     * every stream in the process; "per-client", each stream reads for itself (the old way, for benchmarks to compare).
     */
    RUN_EVENTS_FANOUT: z.enum(["shared", "per-client"]).default("shared"),
    /**
     * The bearer token /metrics asks for (Prometheus' `authorization: { credentials: … }`); unset, /metrics is off
     * (404). At least 16 characters: it guards what runs and how much they cost.
     */
    METRICS_TOKEN: z
      .string()
      .optional()
      .transform((v) => (v?.trim() ? v.trim() : undefined))
      .refine((v) => v === undefined || v.length >= 16, "at least 16 characters (e.g. openssl rand -hex 24)"),

    /** Agent bounds. */
    AGENT_MAX_ITERATIONS: z.coerce.number().int().min(1).max(500).default(50),
    AGENT_RUN_TIMEOUT: duration("2h"),
    /** One model request, retries included; a hung model server cannot hold a step forever. */
    AGENT_MODEL_TIMEOUT: duration("3m"),
    /** Model replies in a row that may fail to parse (or name an unknown tool) before the run fails. */
    AGENT_MAX_REPAIRS: z.coerce.number().int().min(0).max(20).default(3),
    /**
     * The context window (tokens) of a model the built-in table does not know; the prompt is kept under it
     * (inngest/agent/context-budget.ts). AGENT_CONTEXT_WINDOWS sets it per model: "openai-compatible/llama3=8192,…".
     */
    AGENT_CONTEXT_TOKENS: z.coerce.number().int().min(4000).max(10_000_000).default(32_000),
    AGENT_CONTEXT_WINDOWS: z
      .string()
      .default("")
      .refine((v) => v.trim() === "" || /^\s*[^=,\s]+=\d+\s*(,\s*[^=,\s]+=\d+\s*)*$/.test(v), {
        message: "model=tokens pairs separated by commas, e.g. openai-compatible/llama3=8192",
      }),
    /**
     * Token budgets (input + output; 0: no limit), checked before each step (inngest/agent/budget.ts): per run,
     * and per builder per day (the runs they created since midnight UTC).
     */
    AGENT_RUN_TOKEN_BUDGET: z.coerce.number().int().min(0).default(2_000_000),
    AGENT_DAILY_TOKEN_BUDGET: z.coerce.number().int().min(0).default(20_000_000),
    /** Prices for the cost estimate, USD per million tokens: "openai/gpt-4.1=2/8,my-model=0.5/1.5" (over the built-in table). */
    AGENT_PRICES: z
      .string()
      .default("")
      .refine(
        (v) =>
          v.trim() === "" ||
          v.split(",").every((pair) => /^\s*[^=,\s]+\s*=\s*\d+(\.\d+)?\s*\/\s*\d+(\.\d+)?\s*$/.test(pair)),
        { message: "model=input/output pairs (USD per million tokens) separated by commas, e.g. openai/gpt-4.1=2/8" },
      ),
    /**
     * Images attached to a prompt (decision 036): each at most PROMPT_IMAGE_MAX_BYTES, at most PROMPT_IMAGE_MAX_COUNT
     * per prompt, PNG, JPEG, WebP or GIF (checked by their bytes). Only the images of the newest
     * PROMPT_IMAGE_RECENT_TURNS prompts are sent to the model; older ones are named in a line of text.
     */
    PROMPT_IMAGE_MAX_BYTES: size("5m").pipe(
      z
        .number()
        .int()
        .min(1024)
        .max(20 * 1024 * 1024),
    ),
    PROMPT_IMAGE_MAX_COUNT: z.coerce.number().int().min(0).max(10).default(4),
    PROMPT_IMAGE_RECENT_TURNS: z.coerce.number().int().min(1).max(50).default(2),
    /**
     * Models that read images, as comma-separated patterns (* matches anything) over the model spec
     * (provider/model). An image for any other model is refused with a message naming it.
     */
    AGENT_VISION_MODELS: z
      .string()
      .default(
        "openai/gpt-4o*,openai/gpt-4.1*,openai/gpt-5*,openai/o3*,openai/o4*,anthropic/claude-3*," +
          "anthropic/claude-sonnet-4*,anthropic/claude-opus-4*,anthropic/claude-haiku-4*,replay/*",
      ),
    /** Stuck detection (inngest/agent/stuck.ts): repeats of one pattern before the agent is told, and before the run stops. */
    AGENT_STUCK_WARN_AFTER: z.coerce.number().int().min(2).max(100).default(3),
    AGENT_STUCK_STOP_AFTER: z.coerce.number().int().min(2).max(100).default(5),

    /**
     * The model, chosen at run time: openai/<model>, anthropic/<model>,
     * openai-compatible/<model> (with AGENT_BASE_URL). Unset: only the offline
     * demo (a replay) can run.
     */
    AGENT_MODEL: optionalString(),
    AGENT_BASE_URL: z
      .string()
      .url()
      .optional()
      .or(z.literal("").transform(() => undefined)),
    AGENT_API_KEY: optionalString(),
    OPENAI_API_KEY: optionalString(),
    ANTHROPIC_API_KEY: optionalString(),
    /**
     * More server models a builder may pick for a project (decision 034): a comma list of specs like AGENT_MODEL,
     * each with its server key. AGENT_MODEL stays the default.
     */
    AGENT_MODELS: optionalString(),
    /**
     * The key builders' own API keys are sealed with at rest (32+ characters). Unset: one derived from
     * SESSION_SECRET for this purpose only; changing either makes stored keys unreadable (builders add them again).
     */
    DYNO_SECRETS_KEY: z
      .string()
      .min(32, "at least 32 characters")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** 1: builders' OpenAI-compatible base URLs may be loopback, private or link-local addresses (refused otherwise). */
    MODEL_KEYS_ALLOW_PRIVATE: z
      .enum(["", "0", "1", "false", "true"], { message: "1 or 0" })
      .optional()
      .transform((v) => v === "1" || v === "true"),
    /** Check connection: the whole request to the provider. */
    MODEL_CHECK_TIMEOUT: duration("10s"),

    /** Where the agent's tools run: a folder per project (local) or a Modal sandbox. */
    SANDBOX_PROVIDER: z.enum(["local", "modal"]).default("local"),
    /** local provider: run commands under bubblewrap (Linux), or unisolated ("none", at your own risk). */
    LOCAL_SANDBOX_ISOLATION: z.enum(["bubblewrap", "none"]).default("bubblewrap"),
    MODAL_TOKEN_ID: optionalString(),
    MODAL_TOKEN_SECRET: optionalString(),
    MODAL_IMAGE: z.string().default("node:20-slim"),
    /** Bounds for one sandbox command. */
    SANDBOX_COMMAND_TIMEOUT: duration("2m"),
    SANDBOX_OUTPUT_LIMIT: z.coerce
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(64 * 1024),
    /**
     * Resource limits for each local project: its commands and its app process together (one cgroup parent where
     * the host allows, else rlimits and polling of the project's process trees; the startup log says which). Memory
     * counts all the project's processes and their /tmp. Defaults sized for a 2-core, 24 GiB host running several
     * projects (sandbox/limits.ts says why).
     */
    SANDBOX_MEMORY_LIMIT: size("2g").pipe(z.number().min(32 * 1024 * 1024, "at least 32m")),
    /** Processes and threads one project may have at once. */
    SANDBOX_PIDS_LIMIT: z.coerce.number().int().min(8).max(1_000_000).default(512),
    /** CPU cores one project may use (0.5 = half a core). */
    SANDBOX_CPU_LIMIT: z.coerce.number().min(0.01).max(1024).default(1),
    /** Disk use of a project's workspace (and, separately, its home folder with npm's cache); also the largest file. */
    SANDBOX_DISK_LIMIT: size("2g").pipe(z.number().min(1024 * 1024, "at least 1m")),
    /** The largest file a version keeps (decision 026); a bigger one is named as skipped and left out of history. */
    VERSIONS_MAX_FILE_SIZE: size("5m").pipe(z.number().min(1024, "at least 1k")),
    /**
     * The bound on one project's history on disk (decision 026, third addendum): over it, its oldest versions are
     * pruned (the newest 20, and the newest run's, always stay).
     */
    VERSIONS_MAX_HISTORY_SIZE: size("1g").pipe(z.number().min(1024 * 1024, "at least 1m")),
    /**
     * The project's app process (its dev server, decision 020): stopped after APP_IDLE_TIMEOUT without a preview
     * visit or agent tool; a start that does not listen on a port within APP_START_TIMEOUT has failed; its log keeps
     * the last APP_LOG_LIMIT lines (and at most 256 KiB).
     */
    APP_IDLE_TIMEOUT: duration("15m"),
    APP_START_TIMEOUT: duration("60s"),
    APP_LOG_LIMIT: z.coerce.number().int().min(100).max(100_000).default(2000),

    /**
     * Completion webhooks (decision 025). The operator's webhook gets every project's run ends: both or neither of
     * DYNO_WEBHOOK_URL and DYNO_WEBHOOK_SECRET (the HMAC key the receiver shares).
     */
    DYNO_WEBHOOK_URL: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//.test(u), "an http:// or https:// URL")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    DYNO_WEBHOOK_SECRET: z
      .string()
      .min(16, "at least 16 characters")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** 1: builders' webhooks may target loopback, private and link-local addresses (refused otherwise: SSRF). */
    WEBHOOK_ALLOW_PRIVATE: z
      .enum(["", "0", "1", "false", "true"], { message: "1 or 0" })
      .optional()
      .transform((v) => v === "1" || v === "true"),
    /**
     * 1: Export to Git may push to this machine's own repositories (file:// URLs, paths) and to loopback, private
     * and link-local hosts. Off, a builder can only push to public http(s) remotes (no SSRF, no reaching the host).
     */
    VERSIONS_EXPORT_ALLOW_LOCAL: z
      .enum(["", "0", "1", "false", "true"], { message: "1 or 0" })
      .optional()
      .transform((v) => v === "1" || v === "true"),
    /** One POST: connect, send and the receiver's answer. */
    WEBHOOK_TIMEOUT: duration("10s"),
    /** POSTs per delivery before it is recorded failed (the first and its retries). */
    WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).max(21).default(6),
    /** The wait before the first retry; each later one waits 4 times longer (capped at 1h). */
    WEBHOOK_RETRY_DELAY: duration("10s"),
    /**
     * Egress of sandbox commands and the app process (decisions 019, 023). registry: the package registry (the host
     * npm's, plus SANDBOX_EGRESS_ALLOW) and nothing else, through Dyno's egress proxy (local) or Modal's allow-lists;
     * off: no network at all. On Modal it applies to sandboxes created after it is set.
     */
    SANDBOX_EGRESS: z.enum(["registry", "off"]).default("registry"),
    /**
     * More destinations, comma-separated: host or host:port (default port 443), e.g. pypi.org,files.pythonhosted.org;
     * Modal takes port 443 only, and also IPv4 addresses and CIDRs. Checked for the configured provider below.
     */
    SANDBOX_EGRESS_ALLOW: z
      .string()
      .default("")
      .transform((list) =>
        list
          .split(",")
          .map((entry) => entry.trim())
          .filter(Boolean),
      ),
    /** A token npm inside the sandbox uses for the registry. Commands can read it: use a read-only, scoped token. */
    SANDBOX_REGISTRY_TOKEN: optionalString(),
  })
  .superRefine((env, ctx) => {
    if (env.SANDBOX_PROVIDER === "local") {
      try {
        parseAllowList(env.SANDBOX_EGRESS_ALLOW.join(","));
      } catch (error) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ["SANDBOX_EGRESS_ALLOW"],
          message: (error as Error).message,
        });
      }
    }
    if (env.AGENT_STUCK_STOP_AFTER <= env.AGENT_STUCK_WARN_AFTER) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["AGENT_STUCK_STOP_AFTER"],
        message: "must be greater than AGENT_STUCK_WARN_AFTER: the agent is told before the run stops",
      });
    }
    if (env.VERSIONS_MAX_HISTORY_SIZE <= env.VERSIONS_MAX_FILE_SIZE) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["VERSIONS_MAX_HISTORY_SIZE"],
        message: "must be greater than VERSIONS_MAX_FILE_SIZE: the history holds at least the files of one version",
      });
    }
    if (!env.DYNO_WEBHOOK_URL !== !env.DYNO_WEBHOOK_SECRET) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: [env.DYNO_WEBHOOK_URL ? "DYNO_WEBHOOK_SECRET" : "DYNO_WEBHOOK_URL"],
        message: "DYNO_WEBHOOK_URL and DYNO_WEBHOOK_SECRET go together: set both or neither",
      });
    }
    if (env.NODE_ENV !== "production") return;
    if (!env.SESSION_SECRET) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["SESSION_SECRET"],
        message: "required in production (32+ random characters)",
      });
    }
    if (!env.INNGEST_SERVE_ORIGIN && WILDCARD_HOSTS.has(env.HOST)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["INNGEST_SERVE_ORIGIN"],
        message: `required in production when HOST is ${env.HOST}: the origin the Inngest engine calls the app at, e.g. http://app:3000`,
      });
    }
    if (isInngestDev(env)) {
      if (!env.DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ["INNGEST_DEV"],
          message:
            "refused in production: dev mode runs unsigned step calls and shows stack traces. Unset it and set " +
            "INNGEST_SIGNING_KEY and INNGEST_EVENT_KEY (Inngest Cloud or `inngest start`), or set " +
            "DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION=1 to accept the risk",
        });
      }
      return;
    }
    for (const key of ["INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"] as const) {
      if (!env[key]) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: [key],
          message:
            "required in production (Inngest Cloud or self-hosted `inngest start`); or set INNGEST_DEV=1 for a local dev server",
        });
      }
    }
  });

export type Env = z.infer<typeof EnvSchema>;

/** The warning every start logs when INNGEST_DEV runs in production by override; undefined otherwise. */
export function inngestDevInProductionWarning(
  env: Pick<Env, "NODE_ENV" | "INNGEST_DEV" | "DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION">,
): string | undefined {
  if (env.NODE_ENV !== "production" || !isInngestDev(env) || !env.DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION)
    return undefined;
  return (
    "WARNING: INNGEST_DEV is set in production (allowed by DYNO_ALLOW_INNGEST_DEV_IN_PRODUCTION): /api/inngest " +
    "runs step calls without checking their signature and error replies carry stack traces. Anyone who can reach " +
    "the app can run its functions. Use INNGEST_SIGNING_KEY and INNGEST_EVENT_KEY instead."
  );
}

/** Whether the SDK talks to a local dev server (INNGEST_DEV=1, or the engine's URL). */
export function isInngestDev(env: Pick<Env, "INNGEST_DEV">): boolean {
  return env.INNGEST_DEV !== undefined && !["", "0", "false"].includes(env.INNGEST_DEV);
}

export function parseEnv(source: Record<string, string | undefined> = process.env): Env {
  const parsed = EnvSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`).join("\n");
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
