/**
 * The agent's sandbox: one interface (types.ts), two providers. The local
 * provider is the default; Modal is chosen with SANDBOX_PROVIDER=modal.
 */
import type { EgressSettings } from "./egress";
import type { SandboxLimits } from "./limits";
import { openLocalSandbox, type LocalSandboxOptions } from "./local";
import { openModalSandbox } from "./modal";
import type { ModalEgressPolicy } from "./modal-egress";
import type { Sandbox, SandboxProviderName } from "./types";

export * from "./types";
export { stopAllAppProcesses } from "./app/registry";
export { probeApp, type ProbeResult } from "./app/probe";
export { checkLocalIsolation, type IsolationCheck } from "./bubblewrap";
export { localLimitSupport, openLocalSandbox, type LocalIsolation, type LocalSandboxOptions } from "./local";
export { describeLimitSupport } from "./confine";
export { DEFAULT_SANDBOX_LIMITS, formatBytes, type ResourceLimit, type SandboxLimits } from "./limits";
export { openModalSandbox, type ModalSandboxOptions } from "./modal";
export { type ModalEgressPolicy, type SandboxEgress } from "./modal-egress";
export {
  closeEgressProxies,
  describeEgress,
  hostRegistryUrl,
  reachableHosts,
  type EgressMode,
  type EgressSettings,
} from "./egress";

export interface SandboxConfig {
  provider: SandboxProviderName;
  dataDir: string;
  localIsolation: "bubblewrap" | "none";
  /** Resource limits of each local project (its commands and its app process together). Default DEFAULT_SANDBOX_LIMITS. */
  localLimits?: SandboxLimits;
  /** The local app process: idle and start timeouts, log bounds. */
  localApp?: LocalSandboxOptions["app"];
  /** Local commands' and app processes' network (under bubblewrap). Default off. */
  egress?: EgressSettings;
  modal: { tokenId?: string; tokenSecret?: string; image?: string; egress?: ModalEgressPolicy };
}

/**
 * Opens the project's sandbox with the configured provider. When the project
 * last used the same provider, its stored sandboxId is handed over to
 * reattach (the local provider's id is the project id, so it always does).
 * The caller stores the returned sandbox's provider and id on the project.
 */
export function openSandbox(
  config: SandboxConfig,
  project: { id: string; sandboxProvider: string | null; sandboxId: string | null },
): Promise<Sandbox> {
  const storedId = project.sandboxProvider === config.provider ? project.sandboxId : null;
  switch (config.provider) {
    case "local":
      return openLocalSandbox({
        dataDir: config.dataDir,
        projectId: project.id,
        isolation: config.localIsolation,
        limits: config.localLimits,
        app: config.localApp,
        egress: config.egress,
      });
    case "modal":
      return openModalSandbox({
        projectId: project.id,
        sandboxId: storedId,
        tokenId: config.modal.tokenId,
        tokenSecret: config.modal.tokenSecret,
        image: config.modal.image,
        egress: config.modal.egress,
      });
    default: {
      const unknown: never = config.provider;
      return Promise.reject(new Error(`Unknown sandbox provider: ${String(unknown)}`));
    }
  }
}
