/**
 * What the agent's steps need from the outside world, built once per process
 * from the validated environment: the database, the model for a run's model
 * spec, the project's sandbox, and the bounds.
 */
import type { ClientRegistry } from "@boundaryml/baml";
import { eq } from "drizzle-orm";
import { sessionSecret } from "../../app/auth/secret.server";
import { durationMs, env, type Env } from "../../app/env.server";
import { getDatabase } from "../../db";
import type { Database } from "../../db/client";
import { projects } from "../../db/schema";
import { openSandbox, reachableHosts, type Sandbox, type SandboxConfig, type SandboxLimits } from "../../sandbox";
import { parseAllowList } from "../../sandbox/egress/policy";
import { existingProjectHistory } from "../../versions/config";
import type { ProjectHistory } from "../../versions/store";
import { RunFailedError } from "../run-failure";
import { deriveKey } from "../secrets/box";
import { parsePrices, type Price, type TokenBudgets } from "./budget";
import { parseContextWindows, type ContextSettings } from "./context-budget";
import { demoReplayBaseUrl } from "./demo";
import { createClientRegistry } from "./model/client";
import { ModelNotConfiguredError, parseModelSpec, type ModelConfig } from "./model/config";
import { resolveRunModels } from "./model/resolve";
import type { StuckThresholds } from "./stuck";
import type { ToolLimits } from "./tools";

export interface AgentContext {
  database: Database;
  /**
   * The run's model client: a spec string (the server's keys), or a run, whose row names its model, key and fallback
   * (decision 034; a builder's key is opened here and only here).
   */
  model(spec: string | { id: string; model: string }): Promise<{ config: ModelConfig; registry: ClientRegistry }>;
  /** Opens (or reattaches) the project's sandbox and remembers its id on the project row. */
  sandbox(projectId: string): Promise<Sandbox>;
  limits: ToolLimits;
  modelTimeoutMs: number;
  maxRepairs: number;
  /** Context windows, for the prompt's budget (context-budget.ts). */
  context: ContextSettings;
  stuck: StuckThresholds;
  budgets: TokenBudgets;
  /** AGENT_PRICES, for the cost estimate (budget.ts). */
  prices: ReadonlyMap<string, Price>;
  /** The project's history (versions/), when its workspace is one git can use (local provider) and exists. */
  history(projectId: string): ProjectHistory | null;
}

export function sandboxLimits(e: Env): SandboxLimits {
  return {
    memoryBytes: e.SANDBOX_MEMORY_LIMIT,
    processes: e.SANDBOX_PIDS_LIMIT,
    cpuCores: e.SANDBOX_CPU_LIMIT,
    diskBytes: e.SANDBOX_DISK_LIMIT,
  };
}

export function sandboxConfig(e: Env): SandboxConfig {
  return {
    provider: e.SANDBOX_PROVIDER,
    dataDir: e.DYNO_DATA_DIR,
    localIsolation: e.LOCAL_SANDBOX_ISOLATION,
    localLimits: sandboxLimits(e),
    localApp: {
      idleTimeoutMs: durationMs(e.APP_IDLE_TIMEOUT),
      startTimeoutMs: durationMs(e.APP_START_TIMEOUT),
      log: { maxLines: e.APP_LOG_LIMIT },
    },
    egress: {
      mode: e.SANDBOX_EGRESS,
      // Checked when the environment was parsed (for the local provider, which is the only one that reads this).
      allow: e.SANDBOX_PROVIDER === "local" ? parseAllowList(e.SANDBOX_EGRESS_ALLOW.join(",")) : [],
      registryToken: e.SANDBOX_REGISTRY_TOKEN,
    },
    modal: {
      tokenId: e.MODAL_TOKEN_ID,
      tokenSecret: e.MODAL_TOKEN_SECRET,
      image: e.MODAL_IMAGE,
      egress: { mode: e.SANDBOX_EGRESS, allow: e.SANDBOX_EGRESS_ALLOW },
    },
  };
}

/** What the agent's commands may reach, for hints in tool results; undefined when there is no network policy. */
export function networkReach(e: Env): ToolLimits["network"] {
  const { egress } = sandboxConfig(e);
  // Only local commands under bubblewrap go through the egress proxy; Modal and unisolated commands are not described.
  if (e.SANDBOX_PROVIDER !== "local" || e.LOCAL_SANDBOX_ISOLATION !== "bubblewrap" || !egress) return undefined;
  return { mode: egress.mode, hosts: () => reachableHosts(egress) };
}

/** Projects whose local sandbox this context opened and saw recorded on the project row (least recent first). */
const RECORDED_SANDBOXES_KEPT = 1_000;

export function createAgentContext(e: Env = env(), database: Database = getDatabase()): AgentContext {
  const localSandboxesRecorded = new Map<string, { sandboxProvider: string; sandboxId: string }>();
  const modelTimeoutMs = durationMs(e.AGENT_MODEL_TIMEOUT);
  return {
    database,
    async model(spec) {
      const { config, fallback } =
        typeof spec === "string"
          ? { config: parseModelSpec(e, spec), fallback: undefined }
          : await resolveRunModels(database.db, spec.id, {
              env: e,
              sealingKey: () => deriveKey({ secretsKey: e.DYNO_SECRETS_KEY, sessionSecret }),
              allowPrivate: e.MODEL_KEYS_ALLOW_PRIVATE,
            }).catch((error: unknown) => {
              // A removed or unreadable key, a refused base URL: retrying the step would not help, at any step.
              if (error instanceof ModelNotConfiguredError) throw new RunFailedError(error.message);
              throw error;
            });
      const replay = config.provider === "replay" || fallback?.provider === "replay";
      const replayBaseUrl = replay ? await demoReplayBaseUrl() : undefined;
      return {
        config,
        registry: createClientRegistry(config, { replayBaseUrl, requestTimeoutMs: modelTimeoutMs, fallback }),
      };
    },
    async sandbox(projectId) {
      const { db } = database;
      // A local sandbox's id follows from the project's: once its row holds it, opening it again needs no read.
      const known = e.SANDBOX_PROVIDER === "local" ? localSandboxesRecorded.get(projectId) : undefined;
      if (known) {
        const sandbox = await openSandbox(sandboxConfig(e), { id: projectId, ...known });
        if (sandbox.provider === known.sandboxProvider && sandbox.id === known.sandboxId) return sandbox;
      }
      const [project] = await db.select().from(projects).where(eq(projects.id, projectId));
      if (!project) throw new Error(`Project ${projectId} does not exist`);
      const sandbox = await openSandbox(sandboxConfig(e), project);
      if (project.sandboxProvider !== sandbox.provider || project.sandboxId !== sandbox.id) {
        await db
          .update(projects)
          .set({ sandboxProvider: sandbox.provider, sandboxId: sandbox.id })
          .where(eq(projects.id, projectId));
      }
      if (sandbox.provider === "local") {
        localSandboxesRecorded.delete(projectId);
        localSandboxesRecorded.set(projectId, { sandboxProvider: sandbox.provider, sandboxId: sandbox.id });
        for (const oldest of localSandboxesRecorded.keys()) {
          if (localSandboxesRecorded.size <= RECORDED_SANDBOXES_KEPT) break;
          localSandboxesRecorded.delete(oldest);
        }
      }
      return sandbox;
    },
    limits: {
      commandTimeoutMs: durationMs(e.SANDBOX_COMMAND_TIMEOUT),
      maxOutputBytes: e.SANDBOX_OUTPUT_LIMIT,
      network: networkReach(e),
    },
    modelTimeoutMs,
    maxRepairs: e.AGENT_MAX_REPAIRS,
    context: { defaultTokens: e.AGENT_CONTEXT_TOKENS, perModel: parseContextWindows(e.AGENT_CONTEXT_WINDOWS) },
    stuck: { warnAfter: e.AGENT_STUCK_WARN_AFTER, stopAfter: e.AGENT_STUCK_STOP_AFTER },
    budgets: { runTokens: e.AGENT_RUN_TOKEN_BUDGET, dailyTokens: e.AGENT_DAILY_TOKEN_BUDGET },
    prices: parsePrices(e.AGENT_PRICES),
    history: (projectId) => existingProjectHistory(projectId, e),
  };
}
