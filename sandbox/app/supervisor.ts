/**
 * The local provider's app process: one long-lived dev server per project, run under the same bubblewrap confinement
 * and the same per-project cgroup as the project's commands, supervised from this Dyno process.
 *
 * States: stopped -> starting -> running; a crash while running -> crashed with a restart after a backoff (1, 2, 4,
 * 8, 16, 30 s), given up after too many crashes in a window; a resource limit -> crashed (not restarted: it would hit
 * the limit again); idle for APP_IDLE_TIMEOUT -> stopped. Every change is a "system" line in the log and a write of
 * the state file (`<dataDir>/apps/<projectId>/state.json`), which also keeps the command the agent set.
 *
 * One supervisor per (data folder, project) per Dyno process, in a registry on globalThis (registry.ts): sandboxes are
 * opened per step, and Vite's dev server loads modules in a second graph, yet all of them must share one process.
 * One app process per project per host: the supervisor that runs it owns it (ownership.ts) and the supervisors of
 * other Dyno processes on the host (replicas) forward to it, so any replica's step, Stop, preview and Logs view
 * reach the same dev server. Only the owner writes the log and the state file.
 * Nothing is reattached across a restart of Dyno: bubblewrap's --die-with-parent (and the launcher watching its stdin)
 * end the app with Dyno, and the next preview visit or agent tool starts it again.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { countSandboxLimitHit } from "../../metrics/registry";
import {
  bubblewrapArgs,
  checkLocalIsolation,
  isolationUnavailableMessage,
  minimalEnv,
  SANDBOX_HOME,
  sandboxNodeBinary,
} from "../bubblewrap";
import { removeProjectCgroups } from "../cgroups";
import { appCheckout } from "../checkout";
import {
  detectLimitSupport,
  prepareConfinement,
  type Confinement,
  type LimitMode,
  type LimitSupport,
} from "../confine";
import { sandboxEgress, SANDBOX_EGRESS_SOCKET, type EgressSettings, type SandboxEgress } from "../egress";
import { limitAmount, type ResourceLimit, type SandboxLimits } from "../limits";
import { projectRuntimeDir } from "../runtime-dir";
import { SandboxUnavailableError, type AppEndpoint, type AppLogs, type AppProcess, type AppStatus } from "../types";
import { AppLogStore, LineSplitter, readAppLogFile, type AppLogBounds } from "./log-store";
import { askOwner, claimOwnership, controlKey, ownerAddress, type OwnerRequest, type OwnerServer } from "./ownership";

export interface AppSupervisorSettings {
  dataDir: string;
  projectId: string;
  /** The workspace's real path (the app's working directory). */
  workspace: string;
  /** The project's HOME folder (npm's cache). */
  home: string;
  isolation: "bubblewrap" | "none";
  bwrapPath?: string;
  /** The project's limits (shared with its commands, in one cgroup parent). */
  limits: SandboxLimits;
  limitMode: LimitMode;
  /** Host folders the app must not see (as for commands). */
  hide: string[];
  /** Stop after this long without a touch() (a preview visit, an agent tool). Default 15 min. */
  idleTimeoutMs?: number;
  /** A start that does not listen on a port within this long has failed. Default 60 s. */
  startTimeoutMs?: number;
  log?: Partial<AppLogBounds>;
  /** Waits before each restart after a crash (the last one repeats). Default 1, 2, 4, 8, 16, 30 s. */
  backoffMs?: number[];
  /** Give up after this many crashes within crashWindowMs. Default 5 in 10 min. */
  maxCrashes?: number;
  crashWindowMs?: number;
  /** The app's network under bubblewrap, as for commands (sandbox/egress): the launcher forwards 127.0.0.1:3128 to the project's proxy. Default off. */
  egress?: EgressSettings;
}

export const DEFAULT_APP_IDLE_TIMEOUT_MS = 15 * 60_000;
export const DEFAULT_APP_START_TIMEOUT_MS = 60_000;
const DEFAULT_BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000];
/** Where the launcher's folder and the project's socket folder appear inside the sandbox. */
const SANDBOX_RUNTIME_CODE = "/opt/dyno-runtime";
const SOCKET_NAME = "app.sock";
/** The launcher's listening socket, as its fd. */
const LISTEN_FD = 4;
/** How long a stop waits for the app to end after SIGTERM before SIGKILL (the launcher gives its command 3 s). */
const STOP_GRACE_MS = 5000;
/** The disk use of an app process's workspace is measured at most this often (du of node_modules is not free). */
const APP_DISK_POLL_MS = 5000;

/**
 * The folder of code that runs inside the sandbox (sandbox/runtime/): beside this module when it runs from source
 * (tsx, Vite dev); a production `remix vite:build` bundles this module elsewhere, so then it is found in the checkout.
 */
const RUNTIME_CODE =
  [
    path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), "runtime"),
    path.join(appCheckout(), "sandbox", "runtime"),
    path.resolve("sandbox", "runtime"),
  ].find((folder) => existsSync(path.join(folder, "app-launch.mjs"))) ?? path.resolve("sandbox", "runtime");

export function appStateFolder(dataDir: string, projectId: string): string {
  return path.join(path.resolve(dataDir), "apps", projectId);
}

interface SavedState {
  /** The command the agent set; null: the workspace's dev script. */
  command: string | null;
  status: AppStatus;
  ownerPid: number;
  /** The supervisor that wrote it (one per Dyno process and project). */
  ownerId?: string;
  nextSeq: number;
}

/** A forwarded touch() at most this often (and at most a quarter of the idle timeout): it is minutes long. */
const TOUCH_FORWARD_MS = 5_000;

/** "15 min", "30 s", "2 h". */
export function formatDuration(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} min`;
  if (ms >= 1000) return `${Math.round(ms / 1000)} s`;
  return `${ms} ms`;
}

function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
  return code !== null ? `exited with code ${code}` : `was killed (${signal ?? "signal"})`;
}

function limitText(limit: ResourceLimit, limits: SandboxLimits): string {
  const name = { memory: "memory", processes: "process", disk: "disk", cpu: "CPU" }[limit];
  return `${name} limit (${limitAmount(limit, limits)}) reached`;
}

/** One start of the process: its child, its confinement and how it ended. */
interface Launch {
  child: ChildProcess;
  confinement: Confinement;
  command: string;
  /** Auto restart after a crash (true) or a start someone asked for. */
  automatic: boolean;
  limitHit?: ResourceLimit;
  /** Set when a stop was asked for: the exit is then no crash. */
  stopReason?: string;
  startTimer?: NodeJS.Timeout;
  exited: Promise<void>;
  /** Resolves when it listens, fails to start or is stopped. */
  ready: Promise<void>;
  settleReady(): void;
}

export class AppSupervisor implements AppProcess {
  private settings: AppSupervisorSettings;
  private readonly folder: string;
  private readonly runtimeFolder: string;
  private log: AppLogStore;
  private readonly id = randomUUID();
  /** Set while this process owns the project's app process on this host (it runs it, or will restart it). */
  private ownership: OwnerServer | undefined;
  private claiming: Promise<boolean> | undefined;
  private lastForwardedTouch = 0;
  private savedCommand: string | null = null;
  private current: AppStatus;
  private launch: Launch | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private crashTimes: number[] = [];
  private lastActivity = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  /** Operations (start, stop) one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  constructor(settings: AppSupervisorSettings) {
    this.settings = settings;
    this.folder = appStateFolder(settings.dataDir, settings.projectId);
    this.runtimeFolder = projectRuntimeDir(settings.dataDir, settings.projectId);
    this.log = AppLogStore.open(this.folder, settings.log);
    const saved = readSavedState(this.folder);
    this.savedCommand = saved?.command ?? null;
    this.current = {
      state: "stopped",
      command: null,
      port: null,
      startedAt: null,
      restarts: 0,
      reason: null,
      nextRestartAt: null,
    };
    // Nothing survives a restart of Dyno (--die-with-parent): whatever the file says ran is stopped now.
    this.adoptSavedState();
  }

  /** A later sandbox of the same project may carry newer settings (limits, timeouts): they apply from the next start. */
  updateSettings(settings: AppSupervisorSettings): void {
    this.settings = settings;
  }

  async status(): Promise<AppStatus> {
    if (!this.ownership) {
      const remote = await this.forward({ op: "status" });
      if (remote) return remote as AppStatus;
      this.adoptSavedState();
    }
    return this.localStatus();
  }

  private localStatus(): AppStatus {
    this.adoptSavedCommand();
    return { ...this.current, command: this.current.command ?? this.wouldRun() };
  }

  /**
   * Nobody owns the app now: what the state file says is the latest word (another process may have run and stopped
   * it since), except that a process that died while it ran or restarted it left a state that no longer holds.
   */
  private adoptSavedState(): void {
    const saved = readSavedState(this.folder);
    if (!saved || saved.ownerId === this.id) return;
    const active = saved.status.state === "starting" || saved.status.state === "running" || saved.status.nextRestartAt;
    this.current = active
      ? {
          ...saved.status,
          state: "stopped",
          port: null,
          restarts: 0,
          nextRestartAt: null,
          reason: "Dyno restarted; it starts again on the next preview visit or start_app",
        }
      : saved.status;
  }

  /**
   * While nothing runs here, another Dyno process (one that died, or a replica) may have set a newer command in the
   * state file: it is the one to run.
   */
  private adoptSavedCommand(): void {
    if (this.launch || this.destroyed) return;
    const saved = readSavedState(this.folder);
    if (saved && saved.ownerId !== this.id && saved.command) this.savedCommand = saved.command;
  }

  start(options: { command?: string; signal?: AbortSignal } = {}): Promise<AppStatus> {
    this.touch();
    return this.startOrRestart(options, false);
  }

  restart(options: { command?: string; signal?: AbortSignal } = {}): Promise<AppStatus> {
    this.touch();
    return this.startOrRestart(options, true);
  }

  async stop(reason = "stopped on request"): Promise<AppStatus> {
    const remote = await this.asOwner({ op: "stop", reason });
    if (remote.forwarded) return remote.value as AppStatus;
    const status = await this.serially(async () => {
      await this.stopNow(reason);
      return this.localStatus();
    });
    await this.releaseIfIdle();
    return status;
  }

  async logs(options: { sinceSeq?: number; maxLines?: number } = {}): Promise<AppLogs> {
    if (this.ownership) return this.log.read(options);
    const remote = await this.forward({ op: "logs", ...options });
    if (remote) return remote as AppLogs;
    // Nobody runs it: the log on disk is the latest (whoever ran it last wrote it).
    return readAppLogFile(this.folder, { ...options, bounds: this.settings.log });
  }

  async appendLog(stream: "system" | "browser", text: string): Promise<void> {
    if (typeof text !== "string") return;
    const remote = await this.asOwner({ op: "appendLog", stream, text });
    if (remote.forwarded) return;
    for (const line of text.split("\n").slice(0, 50)) if (line.trim()) this.log.append(stream, line);
    await this.releaseIfIdle();
  }

  touch(): void {
    this.lastActivity = Date.now();
    const every = Math.min(TOUCH_FORWARD_MS, (this.settings.idleTimeoutMs ?? DEFAULT_APP_IDLE_TIMEOUT_MS) / 4);
    if (this.ownership || this.lastActivity - this.lastForwardedTouch < every) return;
    this.lastForwardedTouch = this.lastActivity;
    void this.forward({ op: "touch" }).catch(() => {});
  }

  async endpoint(): Promise<AppEndpoint | null> {
    if ((await this.status()).state !== "running") return null;
    // The owner made the socket at this host path: any process on the host reaches the app through it.
    return { kind: "socket", path: path.join(this.runtimeFolder, SOCKET_NAME) };
  }

  /** Stops the app and removes what it kept (the project is being deleted). */
  async destroy(): Promise<void> {
    await this.stop("the project was deleted");
    // Held while the folders go, so no other process starts the app in them meanwhile.
    await this.claim();
    this.destroyed = true;
    clearInterval(this.idleTimer);
    await this.flush();
    this.log.close();
    await rm(this.folder, { recursive: true, force: true, maxRetries: 5 });
    await rm(this.runtimeFolder, { recursive: true, force: true });
    const support = await limitSupport(this.settings.limitMode);
    await removeProjectCgroups(support.cgroups, this.settings.projectId).catch(() => {});
    await this.release();
  }

  // ---- ownership (one app process per project per host) ----

  private get address(): string {
    return ownerAddress(this.settings.dataDir, this.settings.projectId);
  }

  /** Asks the owner, if another process owns the app; undefined when none does (or this one does). */
  private async forward(request: OwnerRequest, options: { signal?: AbortSignal } = {}): Promise<unknown> {
    if (this.ownership || this.destroyed) return undefined;
    const startTimeoutMs = this.settings.startTimeoutMs ?? DEFAULT_APP_START_TIMEOUT_MS;
    const timeoutMs =
      request.op === "start" || request.op === "restart"
        ? startTimeoutMs + 2 * STOP_GRACE_MS
        : request.op === "stop"
          ? 2 * STOP_GRACE_MS
          : undefined;
    return askOwner(this.address, controlKey(this.settings.dataDir), request, { ...options, timeoutMs });
  }

  /**
   * Forwards the request to the owner, or, when no process owns the app, makes this one the owner so it can act
   * itself (a race for the name has one winner; the loser forwards to it).
   */
  private async asOwner(
    request: OwnerRequest,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ forwarded: true; value: unknown } | { forwarded: false }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.ownership) return { forwarded: false };
      const value = await this.forward(request, options);
      if (value !== undefined) return { forwarded: true, value };
      if (options.signal?.aborted) return { forwarded: false };
      if (await this.claim()) return { forwarded: false };
    }
    throw new SandboxUnavailableError("Could not reach the Dyno process running this project's app; try again");
  }

  /** Takes the project's name on this host; false when another process holds it. */
  private claim(): Promise<boolean> {
    if (this.ownership) return Promise.resolve(true);
    this.claiming ??= (async () => {
      try {
        const server = await claimOwnership(this.address, controlKey(this.settings.dataDir), (request) =>
          this.answer(request),
        );
        if (!server) return false;
        this.ownership = server;
        // Whoever owned it last wrote the log and the state: pick both up before writing either.
        this.log.close();
        this.log = AppLogStore.open(this.folder, this.settings.log);
        this.adoptSavedState();
        this.adoptSavedCommand();
        return true;
      } finally {
        this.claiming = undefined;
      }
    })();
    return this.claiming;
  }

  /** Another process's request, answered as if it were this process's own call. */
  private async answer(request: OwnerRequest): Promise<unknown> {
    switch (request.op) {
      case "status":
        return this.localStatus();
      case "start":
      case "restart":
        this.touch();
        return this.startOrRestart(
          request.command === undefined ? {} : { command: String(request.command) },
          request.op === "restart",
        );
      case "stop":
        return this.stop(typeof request.reason === "string" ? request.reason.slice(0, 500) : undefined);
      case "logs":
        return this.log.read({
          ...(typeof request.sinceSeq === "number" && { sinceSeq: request.sinceSeq }),
          ...(typeof request.maxLines === "number" && { maxLines: request.maxLines }),
        });
      case "appendLog":
        return this.appendLog(request.stream === "system" ? "system" : "browser", String(request.text ?? ""));
      case "touch":
        this.lastActivity = Date.now();
        return null;
      default:
        throw new RangeError("unknown request");
    }
  }

  /** Gives the name up once nothing runs or waits to restart here, so any process may start the app next. */
  private async releaseIfIdle(): Promise<void> {
    if (!this.ownership || this.launch || this.restartTimer || this.current.state === "starting") return;
    await this.release();
  }

  private async release(): Promise<void> {
    const ownership = this.ownership;
    if (!ownership) return;
    await this.flush();
    this.ownership = undefined;
    await ownership.close();
  }

  // ---- internals ----

  private serially<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.queue.then(operation, operation);
    this.queue = next.catch(() => {});
    return next;
  }

  /** The command to run: the one set, else `npm run dev` when the workspace's package.json has a dev script. */
  private wouldRun(): string | null {
    if (this.savedCommand) return this.savedCommand;
    try {
      const pkg = JSON.parse(readFileSync(path.join(this.settings.workspace, "package.json"), "utf8")) as {
        scripts?: Record<string, unknown>;
      };
      return typeof pkg.scripts?.dev === "string" ? "npm run dev" : null;
    } catch {
      return null;
    }
  }

  private async startOrRestart(
    options: { command?: string; signal?: AbortSignal },
    forceRestart: boolean,
  ): Promise<AppStatus> {
    if (this.destroyed) throw new SandboxUnavailableError(`The project's app process was removed with its sandbox`);
    const command = options.command?.trim();
    if (options.command !== undefined) {
      if (!command) throw new RangeError("The app command is empty");
      if (command.includes("\0")) throw new RangeError("The app command contains a NUL byte");
      if (Buffer.byteLength(command) > 8192) throw new RangeError("The app command is over 8 KiB");
    }
    const remote = await this.asOwner(
      { op: forceRestart ? "restart" : "start", ...(command !== undefined && { command }) },
      options.signal ? { signal: options.signal } : {},
    );
    if (remote.forwarded) return remote.value as AppStatus;
    const launch = await this.serially(async () => {
      this.adoptSavedCommand();
      if (command !== undefined && command !== this.savedCommand) {
        this.savedCommand = command;
        forceRestart = true;
      }
      const running = this.current.state === "running" || this.current.state === "starting";
      if (running && !forceRestart) return this.launch;
      await this.stopNow(running ? "restarting" : null);
      this.crashTimes = [];
      return this.spawnApp(false);
    });
    if (launch) await waitOrAbort(launch.ready, options.signal);
    await this.releaseIfIdle();
    return this.localStatus();
  }

  private async stopNow(reason: string | null): Promise<void> {
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const launch = this.launch;
    if (launch) {
      launch.stopReason = reason ?? "stopped";
      this.signal(launch, "SIGTERM");
      const killTimer = setTimeout(() => this.signal(launch, "SIGKILL"), STOP_GRACE_MS);
      await launch.exited;
      clearTimeout(killTimer);
    }
    if (reason !== null) {
      const wasActive = this.current.state !== "stopped" || launch;
      this.setStatus({ state: "stopped", port: null, reason, nextRestartAt: null, restarts: 0 });
      if (wasActive && reason !== "restarting") this.system(`stopped: ${reason}`);
    }
    // Whoever waits for this launch to listen hears now, with the state already recorded.
    launch?.settleReady();
  }

  private signal(launch: Launch, signal: NodeJS.Signals): void {
    if (launch.child.pid === undefined) return;
    try {
      // bwrap (or the launcher, unisolated) leads its own group; its pid namespace ends with it.
      process.kill(-launch.child.pid, signal);
    } catch {
      // gone
    }
  }

  /** Spawns the app once; resolves with its launch (whose `ready` says when it listens or failed). */
  private async spawnApp(automatic: boolean): Promise<Launch | undefined> {
    const command = this.wouldRun();
    const { settings } = this;
    if (!command) {
      const reason =
        "nothing to run: the workspace has no package.json with a `dev` script, and no command was given to start_app";
      this.setStatus({ state: "stopped", command: null, port: null, reason, nextRestartAt: null });
      this.system(reason);
      return undefined;
    }
    const check =
      settings.isolation === "bubblewrap" ? await checkLocalIsolation({ bwrapPath: settings.bwrapPath }) : undefined;
    if (check && (!check.available || !check.bwrapPath)) {
      throw new SandboxUnavailableError(isolationUnavailableMessage(check.reason));
    }
    await mkdir(settings.home, { recursive: true, mode: 0o755 });
    // Made here, on the host, and handed to the launcher listening: the folder is never bound into the sandbox, so
    // the app cannot put a link to another socket of the host (another project's, the Docker daemon's) in its place.
    const listener = await listenOnHost(path.join(this.runtimeFolder, SOCKET_NAME));

    const confinement = await prepareConfinement({
      support: await limitSupport(settings.limitMode),
      limits: settings.limits,
      isolated: Boolean(check),
      diskFolders: [settings.workspace, settings.home],
      projectId: settings.projectId,
      diskPollMs: APP_DISK_POLL_MS,
    });
    const hints = { PORT: "3000", HOST: "127.0.0.1", BROWSER: "none" };
    // The same egress as the project's commands: its proxy, the proxy variables, the registry; refusals reach the log.
    let egress: SandboxEgress | undefined;
    try {
      egress =
        check?.bwrapPath && settings.egress?.mode === "registry"
          ? await sandboxEgress(settings.dataDir, settings.projectId, settings.egress)
          : undefined;
    } catch (error) {
      await listener.close();
      await confinement.dispose();
      throw error;
    }
    const launcherArgs = (code: string, egress: string | undefined) => [
      path.join(code, "app-launch.mjs"),
      "--listen-fd",
      String(LISTEN_FD),
      ...(egress ? ["--egress", egress] : []),
      "--",
      "sh",
      "-c",
      command,
    ];
    let file: string;
    let args: string[];
    let env: Record<string, string>;
    if (check?.bwrapPath) {
      file = check.bwrapPath;
      args = bubblewrapArgs(settings.workspace, command, {
        home: settings.home,
        hide: settings.hide,
        tmpBytes: check.tmpSize ? Math.min(settings.limits.diskBytes, settings.limits.memoryBytes) : undefined,
        wrapper: confinement.inner,
        binds: [{ host: RUNTIME_CODE, sandbox: SANDBOX_RUNTIME_CODE, readOnly: true }, ...(egress?.binds ?? [])],
        env: { ...hints, ...egress?.env },
        entry: [sandboxNodeBinary(), ...launcherArgs(SANDBOX_RUNTIME_CODE, egress && SANDBOX_EGRESS_SOCKET)],
      });
      env = minimalEnv(SANDBOX_HOME);
    } else {
      const [wrapper, ...wrapperArgs] = confinement.inner;
      // Unisolated, the app has the host's network: there is no proxy to forward to.
      const launcher = [sandboxNodeBinary(), ...launcherArgs(RUNTIME_CODE, undefined)];
      file = wrapper ?? launcher[0]!;
      args = wrapper ? [...wrapperArgs, ...launcher] : launcher.slice(1);
      env = { ...minimalEnv(settings.home, [path.dirname(sandboxNodeBinary())]), ...hints };
    }
    const outer = confinement.outer(file, args);
    let child: ChildProcess;
    try {
      child = spawn(outer.file, outer.args, {
        cwd: settings.workspace,
        env: env as NodeJS.ProcessEnv,
        detached: true,
        // stdin: held open so the launcher notices when Dyno is gone; fd 3: the launcher's reports; fd 4: the socket.
        stdio: ["pipe", "pipe", "pipe", "pipe", listener.fd],
      });
    } catch (error) {
      await listener.close();
      await confinement.dispose();
      throw error;
    }
    // The launcher has its own copy of the listening socket; this process must not accept on it.
    await listener.close();

    let settleReady = () => {};
    const ready = new Promise<void>((resolve) => (settleReady = resolve));
    let exitedResolve = () => {};
    const exited = new Promise<void>((resolve) => (exitedResolve = resolve));
    const launch: Launch = { child, confinement, command, automatic, exited, ready, settleReady };
    this.launch = launch;
    const startedAt = new Date().toISOString();
    this.setStatus({
      state: "starting",
      command,
      port: null,
      startedAt,
      reason: null,
      nextRestartAt: null,
      ...(automatic ? {} : { restarts: 0 }),
    });
    this.system(`started \`${command}\`${automatic ? ` (restart ${this.current.restarts})` : ""}`);
    this.ensureIdleTimer();
    // The proxy is the project's (its commands use it too): what it refuses while the app runs is written down here.
    const stopRefusals = egress?.proxy.onRefusal((refusal) => {
      if (this.launch === launch)
        this.system(`the sandbox refused a connection to ${refusal.host}:${refusal.port} (${refusal.reason})`);
    });
    void exited.then(() => stopRefusals?.());

    for (const [stream, name] of [
      [child.stdout, "stdout"],
      [child.stderr, "stderr"],
    ] as const) {
      // Blank lines (npm prints a few around each script) say nothing and would crowd out lines that do.
      const splitter = new LineSplitter((line) => line.trim() && this.log.append(name, line));
      stream?.setEncoding("utf8").on("data", (text: string) => splitter.push(text));
      stream?.on("end", () => splitter.end());
    }
    const control = new LineSplitter((line) => this.onReport(launch, line));
    (child.stdio[3] as NodeJS.ReadableStream | null)?.setEncoding("utf8").on("data", (text: string) => {
      control.push(text);
    });
    child.stdin?.on("error", () => {});

    const startTimeoutMs = settings.startTimeoutMs ?? DEFAULT_APP_START_TIMEOUT_MS;
    launch.startTimer = setTimeout(() => {
      if (this.launch !== launch || this.current.state !== "starting") return;
      launch.stopReason = `did not listen on a port within ${formatDuration(startTimeoutMs)}`;
      this.signal(launch, "SIGKILL");
    }, startTimeoutMs);

    if (child.pid !== undefined) {
      confinement.guard.start(child.pid, (limit) => {
        launch.limitHit = limit;
        this.signal(launch, "SIGKILL");
      });
    }
    child.on("error", (error) => {
      this.system(`could not start the app process: ${error.message}`);
    });
    child.on("close", (code, signal) => {
      void this.onExit(launch, code, signal).finally(exitedResolve);
    });
    return launch;
  }

  private onReport(launch: Launch, line: string): void {
    let report: { type?: string; port?: number; host?: string; message?: string };
    try {
      report = JSON.parse(line) as typeof report;
    } catch {
      return;
    }
    if (this.launch !== launch) return;
    if (report.type === "port" && typeof report.port === "number") {
      clearTimeout(launch.startTimer);
      const moved = this.current.state === "running";
      // Idle time counts from when it listens: a slow start is not idleness.
      if (!moved) this.touch();
      this.setStatus({ state: "running", port: report.port, reason: null });
      this.system(moved ? `now listening on port ${report.port}` : `listening on port ${report.port}`);
      launch.settleReady();
    } else if (report.type === "error" && report.message) {
      this.system(report.message);
    }
  }

  private async onExit(launch: Launch, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    await this.recordExit(launch, code, signal);
    // Ended for good (no restart pending): another process may run it next. Not awaited: a stop in the queue is
    // waiting for this exit to be recorded.
    void this.serially(() => this.releaseIfIdle());
  }

  private async recordExit(launch: Launch, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    clearTimeout(launch.startTimer);
    const limit = await launch.confinement.guard.finish({ timedOut: false });
    await launch.confinement.dispose();
    const hit = launch.limitHit ?? limit;
    if (this.launch !== launch) return launch.settleReady();
    await rm(path.join(this.runtimeFolder, SOCKET_NAME), { force: true });
    this.launch = undefined;
    const wasRunning = this.current.state === "running";

    if (launch.stopReason && !hit && !launch.stopReason.startsWith("did not listen")) {
      // Asked to stop: stopNow records the state and settles `ready`.
      return;
    }
    if (hit) {
      countSandboxLimitHit(hit, "app");
      const reason = limitText(hit, this.settings.limits);
      this.setStatus({ state: "crashed", port: null, reason, nextRestartAt: null });
      this.system(`${reason}; the app process was stopped (the project's other processes share this limit)`);
      launch.settleReady();
      return;
    }
    const reason =
      launch.stopReason ??
      (wasRunning ? exitReason(code, signal) : `${exitReason(code, signal)} before it listened on a port`);
    if (!wasRunning && !launch.automatic) {
      // A start someone asked for failed: they are told now (the result and the log); no restarts behind their back.
      this.setStatus({ state: "crashed", port: null, reason, nextRestartAt: null });
      this.system(reason);
      launch.settleReady();
      return;
    }
    this.scheduleRestart(reason);
    launch.settleReady();
  }

  private scheduleRestart(reason: string): void {
    const now = Date.now();
    const windowMs = this.settings.crashWindowMs ?? 10 * 60_000;
    const maxCrashes = this.settings.maxCrashes ?? 5;
    this.crashTimes = [...this.crashTimes.filter((at) => now - at < windowMs), now];
    if (this.crashTimes.length >= maxCrashes) {
      const gaveUp = `crashed ${this.crashTimes.length} times in ${formatDuration(windowMs)}; not restarting (last: ${reason})`;
      this.setStatus({ state: "crashed", port: null, reason: gaveUp, nextRestartAt: null });
      this.system(gaveUp);
      return;
    }
    const backoff = this.settings.backoffMs ?? DEFAULT_BACKOFF_MS;
    const wait = backoff[Math.min(this.current.restarts, backoff.length - 1)] ?? 1000;
    this.setStatus({
      state: "crashed",
      port: null,
      reason,
      nextRestartAt: new Date(now + wait).toISOString(),
    });
    this.system(`${reason}; restarting in ${formatDuration(wait)}`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.serially(async () => {
        if (this.current.state !== "crashed" || !this.current.nextRestartAt) return;
        this.setStatus({ restarts: this.current.restarts + 1 });
        await this.spawnApp(true).catch((error: unknown) => {
          this.setStatus({ state: "crashed", reason: (error as Error).message, nextRestartAt: null });
          this.system(`could not restart: ${(error as Error).message}`);
        });
      });
    }, wait);
    this.restartTimer.unref();
  }

  private ensureIdleTimer(): void {
    if (this.idleTimer) return;
    const idleMs = this.settings.idleTimeoutMs ?? DEFAULT_APP_IDLE_TIMEOUT_MS;
    this.idleTimer = setInterval(
      () => {
        if (this.current.state === "stopped" || (this.current.state === "crashed" && !this.current.nextRestartAt)) {
          clearInterval(this.idleTimer);
          this.idleTimer = undefined;
          return;
        }
        // A start in progress is not idleness (APP_START_TIMEOUT bounds it); idle time counts from when it listens.
        if (this.current.state === "starting") return;
        if (Date.now() - this.lastActivity >= idleMs) void this.stop(`idle for ${formatDuration(idleMs)}`);
      },
      Math.max(20, Math.min(idleMs / 4, 30_000)),
    );
    this.idleTimer.unref();
  }

  private system(text: string): void {
    this.log.append("system", text);
  }

  private setStatus(change: Partial<AppStatus>): void {
    this.current = { ...this.current, ...change };
    void this.saveState();
  }

  private saving: Promise<void> = Promise.resolve();

  private saveState(): Promise<void> {
    const state: SavedState = {
      command: this.savedCommand,
      status: this.current,
      ownerPid: process.pid,
      ownerId: this.id,
      nextSeq: this.log.seq,
    };
    this.saving = this.saving.then(async () => {
      if (this.destroyed) return;
      try {
        await mkdir(this.folder, { recursive: true });
        const temporary = path.join(this.folder, `state.json.${process.pid}.tmp`);
        await writeFile(temporary, JSON.stringify(state));
        await rename(temporary, path.join(this.folder, "state.json"));
      } catch (error) {
        console.warn(`app state ${this.folder}: ${(error as Error).message}`);
      }
    });
    return this.saving;
  }

  /** Waits until the log and state are on disk (tests; shutdown). */
  async flush(): Promise<void> {
    await this.log.flush();
    await this.saving;
  }
}

/**
 * A unix socket listening at socketPath, for a child to inherit (its fd); close() closes this process's copy only.
 * Node unlinks a socket's path when its server closes, so it listens at a temporary name and is renamed into place
 * (a renamed socket keeps listening): the close then unlinks the temporary name, which is gone already.
 */
async function listenOnHost(socketPath: string): Promise<{ fd: number; close(): Promise<void> }> {
  await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  await rm(socketPath, { force: true });
  const temporary = `${socketPath}.${process.pid}.${Date.now()}.tmp`;
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(temporary, () => resolve());
  });
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  const fd = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    await close();
    throw new Error("could not get the app socket's file descriptor");
  }
  await rename(temporary, socketPath);
  return { fd, close };
}

function readSavedState(folder: string): SavedState | undefined {
  const file = path.join(folder, "state.json");
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as SavedState;
  } catch {
    return undefined;
  }
}

/** The saved state of a project's app, read from disk (for a process that does not run it). */
export async function readAppState(dataDir: string, projectId: string): Promise<SavedState | undefined> {
  try {
    return JSON.parse(
      await readFile(path.join(appStateFolder(dataDir, projectId), "state.json"), "utf8"),
    ) as SavedState;
  } catch {
    return undefined;
  }
}

const supportByMode = new Map<LimitMode, Promise<LimitSupport>>();
function limitSupport(mode: LimitMode): Promise<LimitSupport> {
  let support = supportByMode.get(mode);
  if (!support) {
    support = detectLimitSupport(mode);
    supportByMode.set(mode, support);
  }
  return support;
}

async function waitOrAbort(done: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return done;
  if (signal.aborted) return;
  await new Promise<void>((resolve) => {
    const onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    void done.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
