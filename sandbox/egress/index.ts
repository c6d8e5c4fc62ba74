/**
 * The egress proxies of this process, one per project, started on first use and kept on globalThis: Vite's dev
 * server loads the agent's functions in a module graph of their own, and both graphs must share one proxy per
 * project. Also what a sandbox needs to use one: the bind mounts, the environment and the launcher.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { rm, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { projectRuntimeDir } from "../runtime-dir";
import { SandboxUnavailableError, type EgressRefusal } from "../types";
import { createEgressPolicy, registryEntry, type EgressAllowEntry, type EgressPolicy } from "./policy";
import { EgressProxy } from "./proxy";

export * from "./policy";
export { EgressProxy, parseConnectTarget, startEgressProxy, type EgressProxyOptions } from "./proxy";

/** "registry": the registry and the allow-list only, through the proxy. "off": no network at all. */
export type EgressMode = "registry" | "off";

export interface EgressSettings {
  mode: EgressMode;
  /** Hosts allowed besides the registry (SANDBOX_EGRESS_ALLOW). */
  allow?: EgressAllowEntry[];
  /** The registry npm uses inside; default the host's own (`npm config get registry`). */
  registryUrl?: string;
  /**
   * An operator's registry token (SANDBOX_REGISTRY_TOKEN), given to npm inside as its auth token for the registry
   * (in a read-only npmrc file bound in: the proxy cannot add it, as it never sees inside the TLS it tunnels). Code in
   * the sandbox can read it: set it only for a token meant to be used there (read-only, scoped).
   */
  registryToken?: string;
}

export const DEFAULT_REGISTRY_URL = "https://registry.npmjs.org/";
/** Inside the sandbox: the proxy's socket, this folder's launcher and forwarder, and the forwarder's port. */
export const SANDBOX_EGRESS_SOCKET = "/run/dyno/egress.sock";
export const SANDBOX_RUNTIME_BIN = "/run/dyno/bin";
export const EGRESS_FORWARDER_PORT = 3128;

let registryUrlCache: Promise<string> | undefined;
let registryUrlKnown: string | undefined;

/** The registry the host's npm is configured to use, read once (`npm config get registry`); npm's default if that fails. */
export function hostRegistryUrl(): Promise<string> {
  registryUrlCache ??= new Promise((resolve) => {
    execFile("npm", ["config", "get", "registry"], { timeout: 15_000, encoding: "utf8" }, (error, stdout) => {
      const url = error ? "" : stdout.trim();
      let found = DEFAULT_REGISTRY_URL;
      try {
        // registryEntry throws for anything that is not an http(s) URL with a host.
        if (url && registryEntry(url)) found = url;
      } catch {
        // not a URL: npm's default
      }
      registryUrlKnown = found;
      resolve(found);
    });
  });
  return registryUrlCache;
}

/**
 * The hosts commands may reach, for people ("registry.npmjs.org", "pypi.org", "npm.corp.example:8443"), without
 * waiting: the registry's name once it has been read (it is read before the first command runs).
 */
export function reachableHosts(settings: EgressSettings): string[] {
  if (settings.mode === "off") return [];
  const url = settings.registryUrl ?? registryUrlKnown;
  const entries = [...(url ? [registryEntry(url)] : []), ...(settings.allow ?? [])];
  const names = entries.map((entry) => (entry.port === 443 ? entry.host : `${entry.host}:${entry.port}`));
  return url ? names : ["the package registry", ...names];
}

export async function egressPolicyFor(settings: EgressSettings): Promise<EgressPolicy> {
  return createEgressPolicy(settings.registryUrl ?? (await hostRegistryUrl()), settings.allow ?? []);
}

/** One line for the startup log: what commands may reach. */
export async function describeEgress(settings: EgressSettings): Promise<string> {
  if (settings.mode === "off") return "sandbox network: none (SANDBOX_EGRESS=off)";
  const policy = await egressPolicyFor(settings);
  const hosts = policy.allow.map((entry) => `${entry.host}:${entry.port}`).join(", ");
  const token = settings.registryToken ? "; npm inside gets SANDBOX_REGISTRY_TOKEN for the registry" : "";
  return `sandbox network: only ${hosts}, through Dyno's egress proxy (commands under bubblewrap)${token}`;
}

interface ProxyRegistry {
  proxies: Map<string, Promise<EgressProxy>>;
}

const REGISTRY_KEY = Symbol.for("dyno.egress.proxies");

function registry(): ProxyRegistry {
  const holder = globalThis as unknown as Record<symbol, ProxyRegistry | undefined>;
  holder[REGISTRY_KEY] ??= { proxies: new Map() };
  return holder[REGISTRY_KEY];
}

/** This process's proxy socket for the project: the pid in the name keeps several Dyno processes on a host apart. */
export function egressSocketPath(dataDir: string, projectId: string): string {
  return path.join(projectRuntimeDir(dataDir, projectId), `egress-${process.pid}.sock`);
}

/** The project's egress proxy in this process, started on first use; later calls update its policy. */
export async function projectEgressProxy(
  dataDir: string,
  projectId: string,
  policy: EgressPolicy,
): Promise<EgressProxy> {
  const socketPath = egressSocketPath(dataDir, projectId);
  const { proxies } = registry();
  let started = proxies.get(socketPath);
  if (!started) {
    const proxy = new EgressProxy({ socketPath, policy });
    started = proxy.listen().then(() => proxy);
    proxies.set(socketPath, started);
    started.catch(() => proxies.delete(socketPath));
  }
  const proxy = await started;
  if (proxy.currentPolicy !== policy) proxy.setPolicy(policy);
  return proxy;
}

/** Closes the project's proxy in this process (its workspace is gone) and removes its files. */
export async function closeProjectEgressProxy(dataDir: string, projectId: string): Promise<void> {
  const socketPath = egressSocketPath(dataDir, projectId);
  const { proxies } = registry();
  const started = proxies.get(socketPath);
  proxies.delete(socketPath);
  await started?.then((proxy) => proxy.close()).catch(() => {});
  await rm(path.join(path.dirname(socketPath), `npmrc-${process.pid}`), { force: true });
  // The folder is shared with the app process's socket: removed only when nothing else is in it.
  await rmdir(path.dirname(socketPath)).catch(() => {});
}

/** Closes every egress proxy of this process (on app shutdown) and removes their sockets. */
export async function closeEgressProxies(): Promise<void> {
  const { proxies } = registry();
  const all = [...proxies.values()];
  proxies.clear();
  await Promise.all(all.map((started) => started.then((proxy) => proxy.close()).catch(() => {})));
}

/** Several refusals of the same host, port and reason (npm retries) are one; at most `max`, the first kept. */
export function distinctRefusals(refusals: EgressRefusal[], max = 20): EgressRefusal[] {
  const seen = new Map<string, EgressRefusal>();
  for (const { host, port, reason, at } of refusals) {
    const key = `${host}\0${port}\0${reason}`;
    if (!seen.has(key)) seen.set(key, { host, port, reason, at });
    if (seen.size >= max) break;
  }
  return [...seen.values()];
}

let runtimeFolderCache: string | undefined;

/**
 * The host folder with launch.mjs and egress-forwarder.mjs (sandbox/runtime in the app's checkout), bound read-only
 * into the sandbox at SANDBOX_RUNTIME_BIN. Found from the checkout's package.json so a bundled server finds it too.
 */
export function egressRuntimeFolder(): string {
  if (runtimeFolderCache) return runtimeFolderCache;
  let folder = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(folder, "sandbox", "runtime");
    if (existsSync(path.join(folder, "package.json")) && existsSync(path.join(candidate, "launch.mjs"))) {
      runtimeFolderCache = candidate;
      return candidate;
    }
    if (path.dirname(folder) === folder) break;
    folder = path.dirname(folder);
  }
  throw new Error("sandbox/runtime/launch.mjs was not found above this module: the sandbox's egress bridge is missing");
}

/** A host path shown inside the sandbox (bubblewrap's BubblewrapOptions.binds). */
export interface SandboxBind {
  host: string;
  sandbox: string;
  readOnly?: boolean;
}

/** The mounts that show the proxy's socket and the runtime folder inside (both read-only). */
export function egressBinds(socketPath: string): SandboxBind[] {
  return [
    { host: egressRuntimeFolder(), sandbox: SANDBOX_RUNTIME_BIN, readOnly: true },
    { host: socketPath, sandbox: SANDBOX_EGRESS_SOCKET, readOnly: true },
  ];
}

/**
 * The environment that sends tools through the forwarder: the usual proxy variables (curl, pip, most languages),
 * npm's own, and npm's registry. The sandbox's own loopback stays direct (a dev server inside, its tests).
 */
export function egressEnv(policy: EgressPolicy, options: { npmrc?: boolean } = {}): Record<string, string> {
  const proxy = `http://127.0.0.1:${EGRESS_FORWARDER_PORT}`;
  const noProxy = "localhost,127.0.0.1,::1";
  const env: Record<string, string> = {
    HTTPS_PROXY: proxy,
    HTTP_PROXY: proxy,
    https_proxy: proxy,
    http_proxy: proxy,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
    npm_config_proxy: proxy,
    npm_config_https_proxy: proxy,
    npm_config_noproxy: noProxy,
    npm_config_registry: policy.registryUrl,
  };
  // npm's global config (below the user's ~/.npmrc in precedence): holds only the operator's registry token.
  if (options.npmrc) env.npm_config_globalconfig = SANDBOX_NPMRC;
  return env;
}

export const SANDBOX_NPMRC = "/run/dyno/npmrc";

/**
 * The npmrc that gives npm the operator's token for the registry. npm's per-registry key ("nerf dart",
 * //host[:port]/path/:_authToken) cannot be an environment variable: sh drops variables whose names are not
 * identifiers before it runs npm.
 */
export function registryNpmrc(policy: EgressPolicy, token: string): string {
  if (/[\r\n]/.test(token)) throw new Error("SANDBOX_REGISTRY_TOKEN must be one line");
  const url = new URL(policy.registryUrl);
  const nerf = `//${url.host}${url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`}`;
  return `${nerf}:_authToken=${token}\n`;
}

export interface SandboxEgress {
  proxy: EgressProxy;
  /** Mounts: the socket, the launcher's folder, the npmrc when there is a token. */
  binds: SandboxBind[];
  env: Record<string, string>;
  /** The entry (instead of `sh -c command`) that starts the forwarder and then the command. */
  launch(command: string): string[];
}

/**
 * Everything a bwrap sandbox of the project needs for egress (commands and the app process alike): the project's
 * proxy in this process (started on first use), the mounts, the environment, the launcher.
 */
export async function sandboxEgress(
  dataDir: string,
  projectId: string,
  settings: EgressSettings,
): Promise<SandboxEgress> {
  let policy: EgressPolicy;
  let proxy: EgressProxy;
  let binds: SandboxBind[];
  try {
    policy = await egressPolicyFor(settings);
    proxy = await projectEgressProxy(dataDir, projectId, policy);
    binds = egressBinds(proxy.socketPath);
  } catch (error) {
    // The model and the builder read this as the tool's result: say what is wrong and how to do without.
    throw new SandboxUnavailableError(
      `The sandbox's network (its egress proxy) could not start: ${(error as Error).message}. ` +
        "Set SANDBOX_EGRESS=off to run commands without network.",
    );
  }
  if (settings.registryToken) {
    const file = path.join(path.dirname(proxy.socketPath), `npmrc-${process.pid}`);
    await writeFile(file, registryNpmrc(policy, settings.registryToken), { mode: 0o600 });
    binds.push({ host: file, sandbox: SANDBOX_NPMRC, readOnly: true });
  }
  return {
    proxy,
    binds,
    env: egressEnv(policy, { npmrc: Boolean(settings.registryToken) }),
    launch: egressLaunchArgs,
  };
}

/** What runs inside bwrap instead of `sh -c command`: the launcher, which starts the forwarder first. */
export function egressLaunchArgs(command: string): string[] {
  return ["node", `${SANDBOX_RUNTIME_BIN}/launch.mjs`, "--egress-socket", SANDBOX_EGRESS_SOCKET, "--", command];
}
