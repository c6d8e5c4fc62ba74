import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { RUN_STATUSES } from "./run-status";

export type { RunStatus } from "./run-status";

/** A project's title until its first prompt names it. */
export const UNTITLED_PROJECT = "Untitled project";

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

export const users = pgTable(
  "users",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    email: text("email").notNull().unique(),
    passwordHash: text("password_hash").notNull(),
    createdAt: createdAt(),
  },
  (t) => [check("users_email_lower_case", sql`${t.email} = lower(${t.email})`)],
);

/** A signed-in browser. The cookie holds only the id; deleting the row signs it out. */
export const sessions = pgTable(
  "sessions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("sessions_user_idx").on(t.userId)],
);

export const projects = pgTable(
  "projects",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    title: text("title").notNull().default(UNTITLED_PROJECT),
    sandboxProvider: text("sandbox_provider"),
    sandboxId: text("sandbox_id"),
    /**
     * The project's model (decision 034): a server spec ("openai/gpt-4.1") or, with modelKeyId, the model id on one
     * of the owner's keys. Null: the server's AGENT_MODEL. No foreign key on the key ids: a removed key leaves the
     * choice, and a prompt is refused with a reason instead of silently moving to the server's model.
     */
    model: text("model"),
    modelKeyId: uuid("model_key_id"),
    /** Tried when the model fails (BAML's fallback client); null: none. */
    fallbackModel: text("fallback_model"),
    fallbackKeyId: uuid("fallback_key_id"),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("projects_user_idx").on(t.userId, t.updatedAt)],
);

export const runMode = pgEnum("run_mode", ["build", "ask"]);
export const runStatus = pgEnum("run_status", RUN_STATUSES);

export type RunMode = (typeof runMode.enumValues)[number];

export type Todo = { id: string; content: string; status: "pending" | "in_progress" | "completed" };

/** One agent run: a snapshot of its progress, kept in step with its run_events. */
export const runs = pgTable(
  "runs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    mode: runMode("mode").notNull().default("build"),
    status: runStatus("status").notNull().default("queued"),
    prompt: text("prompt").notNull(),
    /** The model spec the run uses, e.g. "openai/gpt-4.1"; "replay/<script>" marks an offline replay. */
    model: text("model").notNull().default(""),
    /** The builder's key the model is reached with (model_keys.id; never the key itself); null: the server's key. */
    modelKeyId: uuid("model_key_id"),
    /** The fallback's spec and key, fixed when the prompt was recorded, so every retry resolves the same models. */
    fallbackModel: text("fallback_model"),
    fallbackKeyId: uuid("fallback_key_id"),
    iteration: integer("iteration").notNull().default(0),
    maxIterations: integer("max_iterations").notNull(),
    currentTool: text("current_tool"),
    toolDescription: text("tool_description"),
    todos: jsonb("todos").$type<Todo[]>().notNull().default([]),
    modifiedFiles: jsonb("modified_files").$type<string[]>().notNull().default([]),
    error: text("error"),
    inputTokens: integer("input_tokens").notNull().default(0),
    outputTokens: integer("output_tokens").notNull().default(0),
    createdAt: createdAt(),
    startedAt: timestamp("started_at", { withTimezone: true }),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [
    index("runs_project_idx").on(t.projectId, t.createdAt),
    // A builder's runs of the day, for the daily token budget (inngest/agent/budget.ts).
    index("runs_user_idx").on(t.userId, t.createdAt),
  ],
);

/**
 * The append-only progress log. `id` is the SSE event id: within a project,
 * ids are assigned in commit order (see db/run-events.ts), so "rows after id N"
 * never skips a row that commits late.
 */
export const runEvents = pgTable(
  "run_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    runId: uuid("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    type: text("type").notNull(),
    data: jsonb("data").$type<Record<string, unknown>>().notNull().default({}),
    /** Set by writers inside steps: a retried step updates its row instead of adding one. */
    dedupeKey: text("dedupe_key"),
    /** How many times the row's writer ran: above 1 means a step body re-executed. */
    writes: integer("writes").notNull().default(1),
    createdAt: createdAt(),
  },
  (t) => [
    index("run_events_project_idx").on(t.projectId, t.id),
    index("run_events_run_idx").on(t.runId, t.id),
    uniqueIndex("run_events_dedupe_idx").on(t.runId, t.dedupeKey),
  ],
);

export const messageRole = pgEnum("message_role", ["user", "assistant", "system"]);

/** The chat transcript the UI shows. At most one message per role per run. */
export const messages = pgTable(
  "messages",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    runId: uuid("run_id").references(() => runs.id, { onDelete: "cascade" }),
    role: messageRole("role").notNull(),
    content: text("content").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    index("messages_project_idx").on(t.projectId, t.createdAt),
    uniqueIndex("messages_run_role_idx").on(t.runId, t.role),
  ],
);

/**
 * user: the prompt; action: the model's chosen tool call (or its unusable
 * output); result: what the tool returned; reply: the final answer;
 * stopped: a notice that the builder stopped the run, so the model sees it;
 * summary: a compaction of the earlier conversation (the entries it covers
 * are kept); note: Dyno telling the agent something plainly (it is repeating itself);
 * restored: a notice that the builder restored a version after that run.
 * steer: messages the builder sent while the run worked, given to it at this iteration.
 */
export const agentEntryKind = pgEnum("agent_entry_kind", [
  "user",
  "action",
  "result",
  "reply",
  "stopped",
  "summary",
  "note",
  "restored",
  "steer",
]);
export type AgentEntryKind = (typeof agentEntryKind.enumValues)[number];

/** What the model sees, one row per (run, iteration, kind): upserts keep retried steps idempotent. */
export const agentEntries = pgTable(
  "agent_entries",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    runId: uuid("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    iteration: integer("iteration").notNull(),
    kind: agentEntryKind("kind").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("agent_entries_step_idx").on(t.runId, t.iteration, t.kind),
    index("agent_entries_project_idx").on(t.projectId, t.id),
  ],
);

export const steerState = pgEnum("steer_state", ["queued", "delivered", "withdrawn", "resent"]);
export type SteerState = (typeof steerState.enumValues)[number];

/**
 * A message the builder sent while a run was active (decision 033): queued, then delivered to the agent at the
 * start of its next think (deliveredIteration), withdrawn by the builder first, or, when the run ended before it
 * was delivered, sent by the builder as a new prompt (resent).
 */
export const steerMessages = pgTable(
  "steer_messages",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    runId: uuid("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    content: text("content").notNull(),
    state: steerState("state").notNull().default("queued"),
    deliveredIteration: integer("delivered_iteration"),
    createdAt: createdAt(),
    settledAt: timestamp("settled_at", { withTimezone: true }),
  },
  (t) => [index("steer_messages_run_idx").on(t.runId, t.state), index("steer_messages_project_idx").on(t.projectId)],
);

/**
 * Where Dyno POSTs a signed `run.ended` payload when a run ends (decision 025).
 * A builder's webhook belongs to one project; the operator's (DYNO_WEBHOOK_URL)
 * is the one row without a project, kept in step with the environment, and
 * its secret stays in the environment (secret is null).
 */
export const webhooks = pgTable(
  "webhooks",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    projectId: uuid("project_id").references(() => projects.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    /** The HMAC key, sealed with a key derived from SESSION_SECRET (inngest/webhooks/secret-box.ts). */
    secret: text("secret"),
    createdAt: createdAt(),
  },
  (t) => [index("webhooks_project_idx").on(t.projectId)],
);

export const webhookDeliveryStatus = pgEnum("webhook_delivery_status", ["pending", "delivered", "failed"]);
export type WebhookDeliveryStatus = (typeof webhookDeliveryStatus.enumValues)[number];

/** One run's delivery to one webhook: unique, so a re-sent `run/ended` never delivers twice. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    webhookId: uuid("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    runId: uuid("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    event: text("event").notNull(),
    status: webhookDeliveryStatus("status").notNull().default("pending"),
    /** POSTs made so far (each one recorded as it ends). */
    attempts: integer("attempts").notNull().default(0),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    createdAt: createdAt(),
    lastAttemptAt: timestamp("last_attempt_at", { withTimezone: true }),
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("webhook_deliveries_webhook_run_idx").on(t.webhookId, t.runId),
    index("webhook_deliveries_run_idx").on(t.runId),
  ],
);

/**
 * Sign-in and sign-up attempt counters (rate-limiter-flexible's Drizzle store): in the database, so every app
 * replica counts against the same budget and a restart forgets nothing.
 */
export const rateLimits = pgTable("rate_limits", {
  key: text("key").primaryKey(),
  points: integer("points").notNull().default(0),
  expire: timestamp("expire", { withTimezone: true }),
});

export const versionKind = pgEnum("version_kind", ["run-start", "step", "run-end", "restore"]);
export type VersionKind = (typeof versionKind.enumValues)[number];

/**
 * A version of a project's files: a commit in its history repository
 * (versions/store.ts). One per (run, iteration, kind), so a retried step
 * never records two; a restore has no run.
 */
export const versions = pgTable(
  "versions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    /** 1, 2, 3… within the project: what the builder reads ("version 7"). */
    number: integer("number").notNull(),
    runId: uuid("run_id").references(() => runs.id, { onDelete: "set null" }),
    iteration: integer("iteration").notNull().default(0),
    kind: versionKind("kind").notNull(),
    tool: text("tool"),
    commitSha: text("commit_sha").notNull(),
    treeSha: text("tree_sha").notNull(),
    /** The version before this one (its diff is against it); null for the first. */
    parentSha: text("parent_sha"),
    filesAdded: integer("files_added").notNull().default(0),
    filesChanged: integer("files_changed").notNull().default(0),
    filesDeleted: integer("files_deleted").notNull().default(0),
    /** Files that changed but were left out of history (too big, a repository of their own…), with why. */
    skipped: jsonb("skipped").$type<{ path: string; reason: string }[]>().notNull().default([]),
    /** For a restore: the version whose files it brought back. */
    restoredFrom: uuid("restored_from"),
    /** How the run ended, for a run-end version. */
    runStatus: text("run_status"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("versions_project_number_idx").on(t.projectId, t.number),
    uniqueIndex("versions_step_idx").on(t.runId, t.iteration, t.kind),
    index("versions_run_idx").on(t.runId),
  ],
);

/** Where a project's history is pushed (Export to Git). The token is sealed like webhook secrets. */
export const gitRemotes = pgTable("git_remotes", {
  projectId: uuid("project_id")
    .primaryKey()
    .references(() => projects.id, { onDelete: "cascade" }),
  url: text("url").notNull(),
  branch: text("branch").notNull().default("dyno"),
  /** Sealed with a key derived from SESSION_SECRET (inngest/webhooks/secret-box.ts); null: no token. */
  token: text("token"),
  lastPushedAt: timestamp("last_pushed_at", { withTimezone: true }),
  /** The version number the last successful push ended at. */
  lastPushedNumber: integer("last_pushed_number"),
  lastError: text("last_error"),
  /** "pushing" while the export-history function owns a push; "pushed" / "failed" once it ended; null: never asked. */
  pushState: text("push_state").$type<"pushing" | "pushed" | "failed">(),
  /** The version the requested push ends at, and when it was asked for (with the project, the event's id). */
  pushNumber: integer("push_number"),
  pushRequestedAt: timestamp("push_requested_at", { withTimezone: true }),
  createdAt: createdAt(),
});

export const modelKeyProvider = pgEnum("model_key_provider", ["openai", "anthropic", "openai-compatible"]);
export type ModelKeyProvider = (typeof modelKeyProvider.enumValues)[number];

/**
 * A builder's own API key for a model provider (decision 034). The key is sealed (inngest/secrets/box.ts) and only
 * opened in the agent's step that builds the model client; pages show its last four characters.
 */
export const modelKeys = pgTable(
  "model_keys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    provider: modelKeyProvider("provider").notNull(),
    label: text("label").notNull(),
    /** openai-compatible only: the server's base URL (…/v1). */
    baseUrl: text("base_url"),
    /** The models the builder uses with this key (ids as the provider names them). */
    models: jsonb("models").$type<string[]>().notNull(),
    /** Sealed; null for an openai-compatible server that wants no key. */
    sealedKey: text("sealed_key"),
    /** The key's last four characters, for display ("sk-…abcd"). */
    keyHint: text("key_hint"),
    lastCheckedAt: timestamp("last_checked_at", { withTimezone: true }),
    lastCheckOk: boolean("last_check_ok"),
    lastCheckMessage: text("last_check_message"),
    createdAt: createdAt(),
  },
  (t) => [index("model_keys_user_idx").on(t.userId, t.createdAt)],
);

/** Raw bytes (bytea): postgres.js and PGlite both hand back a Uint8Array (a Buffer under postgres.js). */
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => "bytea",
});

/**
 * Images a builder attached to a prompt (decision 036): the bytes as sent (type checked by its magic bytes, size
 * bounded), shown in the transcript through an owner-only route and sent to vision models with their prompt.
 */
export const promptImages = pgTable(
  "prompt_images",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    runId: uuid("run_id").references(() => runs.id, { onDelete: "cascade" }),
    messageId: uuid("message_id").references(() => messages.id, { onDelete: "cascade" }),
    /** Its place among the prompt's images (0, 1, …). */
    position: integer("position").notNull(),
    name: text("name").notNull(),
    mediaType: text("media_type").notNull(),
    size: integer("size").notNull(),
    sha256: text("sha256").notNull(),
    bytes: bytea("bytes").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("prompt_images_message_idx").on(t.messageId, t.position), index("prompt_images_run_idx").on(t.runId)],
);

export type User = typeof users.$inferSelect;
export type Session = typeof sessions.$inferSelect;
export type Project = typeof projects.$inferSelect;
export type Run = typeof runs.$inferSelect;
export type RunEvent = typeof runEvents.$inferSelect;
export type Message = typeof messages.$inferSelect;
export type AgentEntry = typeof agentEntries.$inferSelect;
export type SteerMessage = typeof steerMessages.$inferSelect;
export type Webhook = typeof webhooks.$inferSelect;
export type WebhookDelivery = typeof webhookDeliveries.$inferSelect;
export type Version = typeof versions.$inferSelect;
export type GitRemote = typeof gitRemotes.$inferSelect;
export type ModelKey = typeof modelKeys.$inferSelect;
export type PromptImage = typeof promptImages.$inferSelect;
