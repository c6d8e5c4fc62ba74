/**
 * Which models a run talks to, resolved server-side in the step that builds
 * the BAML client (decision 034). The run row names them (a server spec, or a
 * model on one of its builder's keys, by key id); the key is opened here, just
 * before the ClientRegistry is built, and goes nowhere else: not into step
 * output, events, logs or error messages.
 */
import { and, eq } from "drizzle-orm";
import type { Db } from "../../../db/client";
import { modelKeys, runs } from "../../../db/schema";
import { open, SealedKeyUnreadableError } from "../../secrets/box";
import type { Resolver } from "../../webhooks/address";
import { checkModelBaseUrlTarget } from "./base-url";
import { keyedModelConfig, ModelNotConfiguredError, parseModelSpec, type ModelConfig, type ModelEnv } from "./config";

/** What a run records about its models (the runs columns of the same names). */
export interface RunModelChoice {
  model: string;
  modelKeyId: string | null;
  fallbackModel: string | null;
  fallbackKeyId: string | null;
}

export interface ResolveOptions {
  env: ModelEnv;
  /** The AES key builders' keys are sealed with (inngest/secrets/box.ts deriveKey). */
  sealingKey: () => Buffer;
  allowPrivate: boolean;
  resolveHost?: Resolver;
}

/** "openai/gpt-4.1" -> ["openai", "gpt-4.1"] (only the first slash separates). */
function splitSpec(spec: string): [string, string] {
  const slash = spec.indexOf("/");
  return slash < 0 ? [spec, ""] : [spec.slice(0, slash), spec.slice(slash + 1)];
}

/** One model: a server spec, or a model on a key of `userId`'s. */
export async function resolveModel(
  db: Db,
  { spec, keyId, userId }: { spec: string; keyId: string | null; userId: string },
  options: ResolveOptions,
): Promise<ModelConfig> {
  if (!keyId) return parseModelSpec(options.env, spec);
  const [key] = await db
    .select()
    .from(modelKeys)
    .where(and(eq(modelKeys.id, keyId), eq(modelKeys.userId, userId)));
  if (!key) {
    throw new ModelNotConfiguredError(
      `The API key for ${spec} was removed: pick another model for the project (or add the key again) and send the prompt again.`,
    );
  }
  const [provider, model] = splitSpec(spec);
  if (provider !== key.provider || !model || !key.models.includes(model)) {
    throw new ModelNotConfiguredError(
      `The key “${key.label}” is not for ${spec} (any more): pick another model for the project.`,
    );
  }
  let apiKey: string | null = null;
  if (key.sealedKey) {
    try {
      apiKey = open(key.sealedKey, options.sealingKey(), key.id, `The API key “${key.label}”`);
    } catch (error) {
      if (error instanceof SealedKeyUnreadableError) throw new ModelNotConfiguredError(error.message);
      throw error;
    }
  }
  if (key.baseUrl)
    await checkModelBaseUrlTarget(key.baseUrl, { allowPrivate: options.allowPrivate, resolve: options.resolveHost });
  return keyedModelConfig({ provider: key.provider, model, baseUrl: key.baseUrl, apiKey });
}

type RunChoice = RunModelChoice & { userId: string };

/**
 * Runs' model choices this process has read, by run id (most recent last). A run's row names its models when it is
 * created and never changes them, so each think need not read it again; the keys are still looked up every time
 * (a removed key ends the run at its next step).
 */
const runChoices = new Map<string, RunChoice>();
const RUN_CHOICES_KEPT = 1_000;

async function runChoice(db: Db, runId: string): Promise<RunChoice | undefined> {
  const known = runChoices.get(runId);
  if (known) return known;
  const [run] = await db
    .select({
      userId: runs.userId,
      model: runs.model,
      modelKeyId: runs.modelKeyId,
      fallbackModel: runs.fallbackModel,
      fallbackKeyId: runs.fallbackKeyId,
    })
    .from(runs)
    .where(eq(runs.id, runId));
  if (!run) return undefined;
  runChoices.set(runId, run);
  if (runChoices.size > RUN_CHOICES_KEPT) runChoices.delete(runChoices.keys().next().value!);
  return run;
}

/** The run's model and its fallback, from the run's row. */
export async function resolveRunModels(
  db: Db,
  runId: string,
  options: ResolveOptions,
): Promise<{ config: ModelConfig; fallback?: ModelConfig }> {
  const run = await runChoice(db, runId);
  if (!run) throw new ModelNotConfiguredError(`Run ${runId} does not exist.`);
  const config = await resolveModel(db, { spec: run.model, keyId: run.modelKeyId, userId: run.userId }, options);
  if (!run.fallbackModel) return { config };
  const fallback = await resolveModel(
    db,
    { spec: run.fallbackModel, keyId: run.fallbackKeyId, userId: run.userId },
    options,
  );
  return { config, fallback };
}
