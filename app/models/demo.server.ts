/**
 * Whether an offline demo can run here. The todo-page demo always can; the
 * Vite + React demo installs packages, so it needs the sandbox's egress
 * policy on and the package registry reachable from this server (the egress
 * proxy connects from here). A builder is told plainly when it cannot, before
 * a run starts and fails halfway through `npm install`.
 */
import type { Demo } from "../../inngest/agent/demo";
import { hostRegistryUrl } from "../../sandbox";
import { env } from "../env.server";

export class DemoUnavailableError extends Error {
  readonly status = 503;
}

const REACHABLE_FOR_MS = 60_000;
let lastReachable: { url: string; at: number } | undefined;

export interface DemoCheckOptions {
  /** Default: SANDBOX_EGRESS, SANDBOX_PROVIDER and the host npm's registry. */
  egress?: "registry" | "off";
  provider?: "local" | "modal";
  registryUrl?: string;
  timeoutMs?: number;
}

/** Why the demo cannot run here, or null when it can. */
export async function demoUnavailableReason(demo: Demo, options: DemoCheckOptions = {}): Promise<string | null> {
  if (!demo.needsRegistry) return null;
  const SANDBOX_EGRESS = options.egress ?? env().SANDBOX_EGRESS;
  const SANDBOX_PROVIDER = options.provider ?? env().SANDBOX_PROVIDER;
  const timeoutMs = options.timeoutMs ?? 4000;
  const fallback = "Run the todo-page demo instead: it needs no network.";
  if (SANDBOX_EGRESS === "off") {
    return `This demo installs packages from the npm registry, but the sandbox has no network here (SANDBOX_EGRESS=off). ${fallback}`;
  }
  // On Modal the box reaches the registry itself; this server's view says nothing about it.
  if (SANDBOX_PROVIDER !== "local") return null;
  const url = options.registryUrl ?? (await hostRegistryUrl());
  if (lastReachable?.url === url && Date.now() - lastReachable.at < REACHABLE_FOR_MS) return null;
  try {
    // Any answer at all means the registry is there (a private one may not know /-/ping).
    await fetch(new URL("-/ping", url), { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    lastReachable = { url, at: Date.now() };
    return null;
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why =
      (error as Error).name === "TimeoutError"
        ? `no answer within ${timeoutMs / 1000} s`
        : (cause?.code ?? cause?.message ?? (error as Error).message);
    return `This demo installs packages from ${url}, which this server cannot reach (${why}). ${fallback}`;
  }
}
