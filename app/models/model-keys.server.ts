/**
 * Builders' own model keys and a project's model choice (decision 034):
 * adding a key (checked, sealed, shown afterwards only as its last four
 * characters), checking its connection with a tiny real request, removing
 * it; the models a project may pick (the server's and the builder's keys'),
 * and what a prompt records about them. Only a key's owner sees or uses it:
 * another builder's key id answers as if it did not exist.
 */
import { randomUUID } from "node:crypto";
import { and, count, desc, eq } from "drizzle-orm";
import type { Db } from "../../db/client";
import { pgSafeText } from "../../db/pg-safe";
import { modelKeys, projects, type ModelKey, type ModelKeyProvider, type Project } from "../../db/schema";
import {
  checkModelBaseUrlTarget,
  getPinned,
  parseModelBaseUrl,
  type CheckedAddress,
} from "../../inngest/agent/model/base-url";
import {
  KEY_PROVIDERS,
  ModelNotConfiguredError,
  parseModelSpec,
  serverModels,
  type ServerModel,
} from "../../inngest/agent/model/config";
import type { RunModelChoice } from "../../inngest/agent/model/resolve";
import { deriveKey, keyHint, open, seal, SealedKeyUnreadableError } from "../../inngest/secrets/box";
import { sessionSecret } from "../auth/secret.server";
import { durationMs, env } from "../env.server";
import {
  MAX_API_KEY_CHARS,
  MAX_KEY_LABEL_CHARS,
  MAX_KEY_MODELS,
  MAX_MODEL_ID_CHARS,
  MAX_MODEL_KEYS,
  PROVIDER_NAMES,
} from "./model-keys";

export type { RunModelChoice } from "../../inngest/agent/model/resolve";
export { MAX_MODEL_KEYS, PROVIDER_NAMES } from "./model-keys";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A key or a model id: printable ASCII, no spaces (what every provider's keys and ids are). */
const TOKEN = /^[\x21-\x7e]+$/;

/** Refused input on the Settings page or the model picker: the message is for the builder. */
export class ModelKeyInputError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = "ModelKeyInputError";
  }
}

function sealingKey(): Buffer {
  return deriveKey({ secretsKey: env().DYNO_SECRETS_KEY, sessionSecret });
}

export interface ModelKeyView {
  id: string;
  provider: ModelKeyProvider;
  providerName: string;
  label: string;
  baseUrl: string | null;
  models: string[];
  /** "…abcd", or null when no key was given (a keyless OpenAI-compatible server). */
  hint: string | null;
  lastCheck: { ok: boolean; message: string; at: string } | null;
  createdAt: string;
}

function view(row: ModelKey): ModelKeyView {
  return {
    id: row.id,
    provider: row.provider,
    providerName: PROVIDER_NAMES[row.provider],
    label: row.label,
    baseUrl: row.baseUrl,
    models: row.models,
    hint: row.sealedKey ? `…${row.keyHint ?? ""}` : null,
    lastCheck:
      row.lastCheckedAt && row.lastCheckOk !== null
        ? { ok: row.lastCheckOk, message: row.lastCheckMessage ?? "", at: row.lastCheckedAt.toISOString() }
        : null,
    createdAt: row.createdAt.toISOString(),
  };
}

export interface ModelKeyInput {
  provider: unknown;
  label: unknown;
  baseUrl: unknown;
  apiKey: unknown;
  models: unknown;
}

const text = (value: unknown) => (typeof value === "string" ? value.trim() : "");

function parseModels(input: unknown): string[] {
  const ids = [
    ...new Set(
      text(input)
        .split(/[\s,]+/)
        .filter(Boolean),
    ),
  ];
  if (ids.length === 0) throw new ModelKeyInputError("Name at least one model to use with this key (e.g. gpt-4.1).");
  if (ids.length > MAX_KEY_MODELS) throw new ModelKeyInputError(`A key lists at most ${MAX_KEY_MODELS} models.`);
  for (const id of ids) {
    if (id.length > MAX_MODEL_ID_CHARS || !TOKEN.test(id))
      throw new ModelKeyInputError(
        `“${id.slice(0, 40)}” is not a model id: ids are up to ${MAX_MODEL_ID_CHARS} printable characters, no spaces.`,
      );
  }
  return ids;
}

/** Adds a key for `userId`; the key itself is sealed and never returned. */
export async function addModelKey(db: Db, userId: string, input: ModelKeyInput): Promise<ModelKeyView> {
  const provider = KEY_PROVIDERS.find((p) => p === input.provider);
  if (!provider) throw new ModelKeyInputError("Pick a provider: OpenAI, Anthropic or an OpenAI-compatible server.");
  const label = pgSafeText(text(input.label) || PROVIDER_NAMES[provider]);
  if (label.length > MAX_KEY_LABEL_CHARS)
    throw new ModelKeyInputError(`A key's name is at most ${MAX_KEY_LABEL_CHARS} characters.`);
  const apiKey = text(input.apiKey);
  if (apiKey.length > MAX_API_KEY_CHARS)
    throw new ModelKeyInputError(`That key is longer than ${MAX_API_KEY_CHARS} characters: is it the whole key?`);
  if (apiKey && !TOKEN.test(apiKey))
    throw new ModelKeyInputError("An API key is printable characters without spaces: check what was pasted.");
  if (!apiKey && provider !== "openai-compatible")
    throw new ModelKeyInputError(`Paste your ${PROVIDER_NAMES[provider]} API key.`);
  let baseUrl: string | null = null;
  if (provider === "openai-compatible") {
    baseUrl = parseModelBaseUrl(text(input.baseUrl));
    await checkModelBaseUrlTarget(baseUrl, { allowPrivate: env().MODEL_KEYS_ALLOW_PRIVATE });
  } else if (text(input.baseUrl)) {
    throw new ModelKeyInputError("Only an OpenAI-compatible server takes a base URL.");
  }
  const models = parseModels(input.models);
  const [{ n } = { n: 0 }] = await db.select({ n: count() }).from(modelKeys).where(eq(modelKeys.userId, userId));
  if (n >= MAX_MODEL_KEYS) throw new ModelKeyInputError(`You have ${MAX_MODEL_KEYS} keys: remove one first.`);
  // The id is sealed in with the key, so a sealed key copied onto another row does not open.
  const id = randomUUID();
  const [row] = await db
    .insert(modelKeys)
    .values({
      id,
      userId,
      provider,
      label,
      baseUrl,
      models,
      sealedKey: apiKey ? seal(apiKey, sealingKey(), id) : null,
      keyHint: apiKey ? keyHint(apiKey) : null,
    })
    .returning();
  if (!row) throw new Error("model key insert returned no row");
  return view(row);
}

export async function listModelKeys(db: Db, userId: string): Promise<ModelKeyView[]> {
  const rows = await db
    .select()
    .from(modelKeys)
    .where(eq(modelKeys.userId, userId))
    .orderBy(desc(modelKeys.createdAt))
    .limit(MAX_MODEL_KEYS * 2);
  return rows.map(view);
}

async function ownKey(db: Db, userId: string, keyId: unknown): Promise<ModelKey | undefined> {
  if (typeof keyId !== "string" || !UUID.test(keyId)) return undefined;
  const [row] = await db
    .select()
    .from(modelKeys)
    .where(and(eq(modelKeys.id, keyId), eq(modelKeys.userId, userId)));
  return row;
}

/**
 * Removes one of the builder's keys; false when they have none by that id. Projects that picked it keep the choice
 * and say the key was removed (a prompt is refused until another model is picked), and a run using it fails with
 * that reason at its next step: neither moves silently to the server's model.
 */
export async function removeModelKey(db: Db, userId: string, keyId: unknown): Promise<boolean> {
  if (typeof keyId !== "string" || !UUID.test(keyId)) return false;
  const deleted = await db
    .delete(modelKeys)
    .where(and(eq(modelKeys.id, keyId), eq(modelKeys.userId, userId)))
    .returning({ id: modelKeys.id });
  return deleted.length > 0;
}

const MAX_CHECK_MESSAGE_CHARS = 300;

/** The provider's own words from an error body (OpenAI and Anthropic both use {error: {message}}), else its start. */
function providerWords(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const message =
      typeof parsed.error === "string"
        ? parsed.error
        : typeof parsed.error?.message === "string"
          ? parsed.error.message
          : typeof parsed.message === "string"
            ? parsed.message
            : undefined;
    if (message) return message;
  } catch {
    // Not JSON: its text, shortened.
  }
  return body.replace(/\s+/g, " ").trim() || "(no message)";
}

/** A message that can be stored and shown: without the key (should a server echo it), short, Postgres-safe. */
function shown(message: string, apiKey: string | null): string {
  const scrubbed = apiKey ? message.split(apiKey).join("…") : message;
  const short =
    scrubbed.length > MAX_CHECK_MESSAGE_CHARS ? `${scrubbed.slice(0, MAX_CHECK_MESSAGE_CHARS - 1)}…` : scrubbed;
  return pgSafeText(short);
}

/** One small request the provider answers cheaply: the list of models. A base URL's is pinned to its checked address. */
async function probe(
  key: ModelKey,
  apiKey: string | null,
  timeoutMs: number,
  target: CheckedAddress | null,
): Promise<{ ok: boolean; message: string }> {
  const url =
    key.provider === "anthropic"
      ? "https://api.anthropic.com/v1/models"
      : `${key.baseUrl ?? "https://api.openai.com/v1"}/models`;
  const host = new URL(url).host;
  const headers: Record<string, string> =
    key.provider === "anthropic"
      ? { "x-api-key": apiKey ?? "", "anthropic-version": "2023-06-01" }
      : apiKey
        ? { authorization: `Bearer ${apiKey}` }
        : {};
  let status: number;
  let body: string;
  try {
    if (target) {
      ({ status, body } = await getPinned(url, target, { headers, timeoutMs }));
    } else {
      // The providers' own fixed hosts. No redirects: one could lead where no check looked.
      const response = await fetch(url, { headers, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
      status = response.status;
      body = (await response.text().catch(() => "")).slice(0, 64 * 1024);
    }
  } catch (error) {
    const name = (error as { name?: unknown }).name;
    if (name === "TimeoutError" || name === "AbortError")
      return { ok: false, message: `No answer from ${host} within ${timeoutMs / 1000} s.` };
    const { code, cause } = error as { code?: unknown; cause?: { code?: unknown; message?: unknown } };
    const why = code ?? cause?.code ?? cause?.message ?? "failed";
    return { ok: false, message: `Could not connect to ${host} (${String(why)}).` };
  }
  if (status >= 300 && status < 400)
    return { ok: false, message: `The server answered ${status} (a redirect): give the final base URL.` };
  if (status < 200 || status >= 300)
    return { ok: false, message: `The provider answered ${status}: ${providerWords(body)}` };
  let listed: string[] = [];
  try {
    const parsed = JSON.parse(body) as { data?: { id?: unknown }[] };
    listed = (parsed.data ?? []).map((m) => String(m.id));
  } catch {
    return { ok: false, message: "The server answered, but not with a list of models: is this the API's base URL?" };
  }
  const missing = key.models.filter((m) => !listed.includes(m));
  return {
    ok: true,
    message:
      missing.length === 0 || listed.length === 0
        ? "Connected."
        : `Connected, but the server does not list ${missing.join(", ")}.`,
  };
}

/** Check connection: a real request with the key, its result stored on the key (never the key in it). */
export async function checkModelKey(
  db: Db,
  userId: string,
  keyId: unknown,
): Promise<{ ok: boolean; message: string } | null> {
  const key = await ownKey(db, userId, keyId);
  if (!key) return null;
  let apiKey: string | null = null;
  let result: { ok: boolean; message: string };
  try {
    if (key.sealedKey) apiKey = open(key.sealedKey, sealingKey(), key.id);
    const target = key.baseUrl
      ? await checkModelBaseUrlTarget(key.baseUrl, { allowPrivate: env().MODEL_KEYS_ALLOW_PRIVATE })
      : null;
    result = await probe(key, apiKey, durationMs(env().MODEL_CHECK_TIMEOUT), target);
  } catch (error) {
    if (!(error instanceof SealedKeyUnreadableError) && !(error instanceof ModelNotConfiguredError)) throw error;
    result = { ok: false, message: error.message };
  }
  const message = shown(result.message, apiKey);
  await db
    .update(modelKeys)
    .set({ lastCheckedAt: new Date(), lastCheckOk: result.ok, lastCheckMessage: message })
    .where(eq(modelKeys.id, key.id));
  return { ok: result.ok, message };
}

// ---- A project's model ----

/** A picker option's value: "" (the server's default), "server:<spec>" or "key:<key id>:<model id>". */
export function choiceValue(choice: { model: string | null; keyId: string | null }): string {
  if (!choice.model) return "";
  if (!choice.keyId) return `server:${choice.model}`;
  const slash = choice.model.indexOf("/");
  return `key:${choice.keyId}:${choice.model.slice(slash + 1)}`;
}

export interface ModelOption {
  value: string;
  label: string;
  /** Why it cannot be picked (a server model missing its key); null when it can. */
  problem: string | null;
}

export interface ModelPicker {
  defaultLabel: string | null;
  server: ModelOption[];
  keys: Array<{ label: string; options: ModelOption[] }>;
  model: string;
  fallback: string;
  /** The current choice, as the page shows it ("openai/gpt-4.1 with “Work key”"). */
  summary: string;
}

export async function loadModelPicker(db: Db, userId: string, project: Project): Promise<ModelPicker> {
  const offered = serverModels(env());
  const keys = await listModelKeys(db, userId);
  const defaultModel = offered.find((m) => m.isDefault);
  const keyName = (id: string | null) => keys.find((k) => k.id === id)?.label;
  const describe = (model: string | null, keyId: string | null) =>
    !model
      ? defaultModel
        ? `${defaultModel.label} (server default)`
        : "server default (none configured)"
      : keyId
        ? `${model} with “${keyName(keyId) ?? "a removed key"}”`
        : model;
  return {
    defaultLabel: defaultModel?.label ?? null,
    server: offered.map((m: ServerModel) => ({
      value: `server:${m.label}`,
      label: m.isDefault ? `${m.label} (default)` : m.label,
      problem: m.problem,
    })),
    keys: keys.map((k) => ({
      label: `${k.label} (${k.providerName}${k.hint ? `, ${k.hint}` : ""})`,
      options: k.models.map((m) => ({ value: `key:${k.id}:${m}`, label: `${k.provider}/${m}`, problem: null })),
    })),
    model: choiceValue({ model: project.model, keyId: project.modelKeyId }),
    fallback: choiceValue({ model: project.fallbackModel, keyId: project.fallbackKeyId }),
    summary:
      describe(project.model, project.modelKeyId) +
      (project.fallbackModel ? `, fallback ${describe(project.fallbackModel, project.fallbackKeyId)}` : ""),
  };
}

/** A picker value checked against what the builder may use: the server's offered models, their own keys' models. */
async function parseChoice(
  db: Db,
  userId: string,
  value: unknown,
): Promise<{ model: string | null; keyId: string | null }> {
  const raw = typeof value === "string" ? value : "";
  if (raw === "") return { model: null, keyId: null };
  if (raw.startsWith("server:")) {
    const spec = raw.slice("server:".length);
    const offered = serverModels(env()).find((m) => m.label === spec);
    if (!offered) throw new ModelKeyInputError(`The server does not offer “${spec.slice(0, 80)}”.`);
    if (offered.problem) throw new ModelKeyInputError(offered.problem);
    return { model: offered.label, keyId: null };
  }
  const match = /^key:([0-9a-f-]{36}):(.+)$/i.exec(raw);
  if (!match) throw new ModelKeyInputError("That is not a model from the list.");
  const key = await ownKey(db, userId, match[1]);
  if (!key) throw new ModelKeyInputError("That key does not exist (any more).", 404);
  if (!key.models.includes(match[2]!))
    throw new ModelKeyInputError(`The key “${key.label}” does not list the model “${match[2]!.slice(0, 80)}”.`);
  return { model: `${key.provider}/${match[2]}`, keyId: key.id };
}

/** Sets the project's model and fallback from the picker's values. */
export async function setProjectModel(
  db: Db,
  userId: string,
  project: Pick<Project, "id">,
  values: { model: unknown; fallback: unknown },
): Promise<void> {
  const model = await parseChoice(db, userId, values.model);
  const fallback = await parseChoice(db, userId, values.fallback);
  if (fallback.model && fallback.model === model.model && fallback.keyId === model.keyId)
    throw new ModelKeyInputError("Pick a fallback other than the model itself (or none).");
  if (!model.model && fallback.model && !serverModels(env()).some((m) => m.isDefault && !m.problem))
    throw new ModelKeyInputError("Pick a model first: the server has no default model to fall back from.");
  await db
    .update(projects)
    .set({
      model: model.model,
      modelKeyId: model.keyId,
      fallbackModel: fallback.model,
      fallbackKeyId: fallback.keyId,
    })
    .where(and(eq(projects.id, project.id), eq(projects.userId, userId)));
}

/** A recorded choice still usable: a key of the builder's that lists the model, or a spec the server can run. */
async function checkedChoice(
  db: Db,
  userId: string,
  spec: string,
  keyId: string | null,
  { offeredOnly }: { offeredOnly: boolean },
): Promise<string> {
  if (keyId) {
    const key = await ownKey(db, userId, keyId);
    const model = spec.slice(spec.indexOf("/") + 1);
    if (!key)
      throw new ModelNotConfiguredError(
        `The API key for ${spec} was removed: pick another model for the project (or add the key again in Settings).`,
      );
    if (!spec.startsWith(`${key.provider}/`) || !key.models.includes(model))
      throw new ModelNotConfiguredError(`The key “${key.label}” no longer lists ${spec}: pick another model.`);
    return spec;
  }
  const label = parseModelSpec(env(), spec).label;
  if (offeredOnly && !serverModels(env()).some((m) => m.label === label))
    throw new ModelNotConfiguredError(`The server no longer offers ${label}: pick another model for the project.`);
  return label;
}

/**
 * What a prompt records about its models: `requested` (a spec, as the demo and tests give; or a run's choice, as
 * Retry gives), else the project's choice (else AGENT_MODEL), with the project's fallback. Throws
 * ModelNotConfiguredError with a sentence when it cannot run; nothing is written then.
 */
export async function promptModelChoice(
  db: Db,
  { userId, projectId, requested }: { userId: string; projectId: string; requested?: string | RunModelChoice },
): Promise<RunModelChoice> {
  if (typeof requested === "string")
    return {
      model: parseModelSpec(env(), requested).label,
      modelKeyId: null,
      fallbackModel: null,
      fallbackKeyId: null,
    };
  let choice: RunModelChoice | undefined = requested;
  let offeredOnly = false;
  if (!choice) {
    const [project] = UUID.test(projectId)
      ? await db
          .select()
          .from(projects)
          .where(and(eq(projects.id, projectId), eq(projects.userId, userId)))
      : [];
    choice = {
      model: project?.model ?? "",
      modelKeyId: project?.model ? project.modelKeyId : null,
      fallbackModel: project?.fallbackModel ?? null,
      fallbackKeyId: project?.fallbackModel ? project.fallbackKeyId : null,
    };
    offeredOnly = true;
  }
  const model = choice.model
    ? await checkedChoice(db, userId, choice.model, choice.modelKeyId, { offeredOnly })
    : parseModelSpec(env(), env().AGENT_MODEL).label;
  const fallbackModel = choice.fallbackModel
    ? await checkedChoice(db, userId, choice.fallbackModel, choice.fallbackKeyId, { offeredOnly })
    : null;
  return {
    model,
    modelKeyId: choice.model ? choice.modelKeyId : null,
    fallbackModel,
    fallbackKeyId: fallbackModel ? choice.fallbackKeyId : null,
  };
}

/** Why the project's prompts cannot run (the same checks a prompt goes through); null when they can. */
export async function projectModelProblem(db: Db, project: Project): Promise<string | null> {
  try {
    await promptModelChoice(db, { userId: project.userId, projectId: project.id });
    return null;
  } catch (error) {
    if (error instanceof ModelNotConfiguredError) return error.message;
    throw error;
  }
}

// ---- Form intents ----

export type SettingsActionResult =
  | { ok: true; intent: "key-add"; keyId: string; message: string }
  | { ok: true; intent: "key-remove"; message: string }
  | { ok: boolean; intent: "key-check"; keyId: string; message: string }
  | { ok: false; intent: string; error: string; status: number };

/** The Settings page's intents: add, check and remove a key. */
export async function handleSettingsAction(db: Db, userId: string, form: FormData): Promise<SettingsActionResult> {
  const intent = String(form.get("intent") ?? "");
  try {
    switch (intent) {
      case "key-add": {
        const key = await addModelKey(db, userId, {
          provider: form.get("provider"),
          label: form.get("label"),
          baseUrl: form.get("baseUrl"),
          apiKey: form.get("apiKey"),
          models: form.get("models"),
        });
        return { ok: true, intent, keyId: key.id, message: `Added “${key.label}”.` };
      }
      case "key-check": {
        const keyId = String(form.get("keyId") ?? "");
        const result = await checkModelKey(db, userId, keyId);
        if (!result) return { ok: false, intent, error: "That key does not exist (any more).", status: 404 };
        return { ok: result.ok, intent, keyId, message: result.message };
      }
      case "key-remove": {
        if (!(await removeModelKey(db, userId, form.get("keyId"))))
          return { ok: false, intent, error: "That key does not exist (any more).", status: 404 };
        return { ok: true, intent, message: "Key removed." };
      }
      default:
        return { ok: false, intent, error: `Unknown action “${intent.slice(0, 40)}”.`, status: 400 };
    }
  } catch (error) {
    if (error instanceof ModelKeyInputError) return { ok: false, intent, error: error.message, status: error.status };
    if (error instanceof ModelNotConfiguredError) return { ok: false, intent, error: error.message, status: 400 };
    throw error;
  }
}

export type ModelActionResult =
  | { ok: true; intent: "model-set"; message: string }
  | { ok: false; intent: "model-set"; error: string; status: number };

export const isModelIntent = (intent: unknown): intent is "model-set" => intent === "model-set";

/** The project page's model picker. The route checked that the project is the builder's. */
export async function handleModelAction(
  db: Db,
  userId: string,
  project: Pick<Project, "id">,
  form: FormData,
): Promise<ModelActionResult> {
  try {
    await setProjectModel(db, userId, project, { model: form.get("model"), fallback: form.get("fallback") });
    return { ok: true, intent: "model-set", message: "Model saved: the next prompt uses it." };
  } catch (error) {
    if (error instanceof ModelKeyInputError)
      return { ok: false, intent: "model-set", error: error.message, status: error.status };
    throw error;
  }
}
