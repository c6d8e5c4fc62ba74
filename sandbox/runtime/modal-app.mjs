// The app process's supervisor inside a Modal sandbox: written into the box by sandbox/modal-app.ts and run by
// the box's own node (plain ESM, no dependencies). Modal's SDK can only start processes (exec) and wait for them,
// so everything that must outlive one exec lives here, in the box: the supervisor process, the bounded log, the
// state file. Any Dyno process (or replica) that reaches the box sees the same app.
//
//   node modal-app.mjs <op> <dir> [args…]   prints one JSON answer on stdout, exits 0; a usage error exits 2.
//
// ops: start <workdir> <appPort> <logCap> <idleMs> <backoffMs,…> <command|""> · supervise (internal) · status ·
//      stop <reason> · logs <sinceSeq> <maxLines> · append <logCap> <stream> <text> · touch
// Files in <dir>: state.json (owned by the supervisor once it runs), log + log.1 (JSON lines, rotated at logCap
// bytes, so at most twice that is kept), seq (the next line's number), lock/ (a mkdir lock around log writes),
// supervisor.pid (written by start, so no two writers share state.json while it starts), stop (a stop request:
// its reason), active (its mtime is the last activity, for the idle stop).
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import process from "node:process";
import { clearInterval, setInterval, setTimeout } from "node:timers";

const MAX_LINE_CHARS = 2000;
const LOCK_STALE_MS = 5000;
const STOP_GRACE_MS = 3000;

const [op, dir, ...args] = process.argv.slice(2);
const file = (name) => path.join(dir, name);
const now = () => new Date().toISOString();
const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return error.code === "EPERM";
  }
  // A zombie still answers signal 0; it is not running.
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** The supervisor's pid while it runs, else null (a reused pid that is not a supervisor does not count). */
function supervisorPid() {
  const pid = Number.parseInt(readOr(file("supervisor.pid"), ""), 10);
  if (!alive(pid)) return null;
  const commandLine = readOr(`/proc/${pid}/cmdline`, null);
  return commandLine === null || commandLine.includes("supervise") ? pid : null;
}

function killGroup(pgid, signal) {
  if (!Number.isInteger(pgid) || pgid <= 0) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    try {
      process.kill(pgid, signal);
    } catch {
      // Already gone.
    }
  }
}

function readState() {
  try {
    return JSON.parse(fs.readFileSync(file("state.json"), "utf8"));
  } catch {
    return null;
  }
}

function writeState(state) {
  const temporary = file(`state.json.${process.pid}`);
  fs.writeFileSync(temporary, JSON.stringify(state));
  fs.renameSync(temporary, file("state.json"));
}

// ---- the log -------------------------------------------------------------------------------------------------

function withLock(action) {
  const lock = file("lock");
  for (let attempt = 0; ; attempt++) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (error) {
      if (error.code !== "EEXIST") throw error;
      try {
        // A holder that died (SIGKILL) leaves its lock behind: steal it once it is clearly stale.
        if (Date.now() - fs.statSync(lock).mtimeMs > LOCK_STALE_MS) fs.rmSync(lock, { recursive: true, force: true });
      } catch {
        // Released meanwhile.
      }
      if (attempt > 500) throw new Error("the app log stays locked");
      sleepSync(10);
    }
  }
  try {
    return action();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Appends lines ({stream, text}) with the next seq numbers. The log rotates to log.1 (dropping the older one)
 * before it would pass cap bytes, so the two files hold at most twice the cap (one line alone may pass it).
 */
function appendLines(entries, cap) {
  if (entries.length === 0) return;
  withLock(() => {
    let seq = Number.parseInt(readOr(file("seq"), "0"), 10) || 0;
    let size = 0;
    try {
      size = fs.statSync(file("log")).size;
    } catch {
      // No log yet.
    }
    let text = "";
    for (const entry of entries) {
      const line = JSON.stringify({ seq: seq++, at: now(), stream: entry.stream, text: cut(entry.text) }) + "\n";
      const bytes = Buffer.byteLength(line);
      if (size > 0 && size + bytes > cap) {
        if (text) fs.appendFileSync(file("log"), text);
        fs.renameSync(file("log"), file("log.1"));
        text = "";
        size = 0;
      }
      text += line;
      size += bytes;
    }
    fs.appendFileSync(file("log"), text);
    fs.writeFileSync(file("seq"), String(seq));
  });
}

function cut(text) {
  const line = String(text).replace(/\r$/, "");
  return line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)} […cut]` : line;
}

function readOr(name, fallback) {
  try {
    return fs.readFileSync(name, "utf8");
  } catch {
    return fallback;
  }
}

function readLogs(sinceSeq, maxLines) {
  const lines = [];
  for (const name of ["log.1", "log"]) {
    for (const raw of readOr(file(name), "").split("\n")) {
      if (!raw) continue;
      try {
        lines.push(JSON.parse(raw));
      } catch {
        // A line cut by a crash mid-write.
      }
    }
  }
  const nextSeq = Number.parseInt(readOr(file("seq"), "0"), 10) || 0;
  const newer = lines.filter((line) => line.seq >= sinceSeq);
  const kept = newer.slice(-maxLines);
  const dropped = lines.length > 0 && lines[0].seq > sinceSeq && sinceSeq < nextSeq;
  return { lines: kept, nextSeq, truncated: dropped || kept.length < newer.length };
}

// ---- status ----------------------------------------------------------------------------------------------------

function publicStatus(state) {
  if (!state) {
    return {
      state: "stopped",
      command: null,
      port: null,
      startedAt: null,
      restarts: 0,
      reason: null,
      nextRestartAt: null,
    };
  }
  let { state: current, reason, nextRestartAt } = state;
  // The supervisor is what keeps it running; without one nothing will start it again.
  const live = current === "starting" || current === "running" || (current === "crashed" && nextRestartAt);
  if (live && !supervisorPid()) {
    current = "crashed";
    reason = "the app's supervisor is gone (killed, or the sandbox restarted); start it again";
    nextRestartAt = null;
  }
  return {
    state: current,
    command: state.command ?? null,
    port: current === "running" ? (state.port ?? null) : null,
    startedAt: state.startedAt ?? null,
    restarts: state.restarts ?? 0,
    reason: reason ?? null,
    nextRestartAt: nextRestartAt ?? null,
  };
}

function devCommand(workdir) {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(workdir, "package.json"), "utf8"));
    return typeof manifest?.scripts?.dev === "string" ? "npm run dev" : null;
  } catch {
    return null;
  }
}

// ---- start and stop --------------------------------------------------------------------------------------------

function start([workdir, appPort, logCap, idleMs, backoff, given]) {
  const previous = readState();
  const cap = Number(logCap);
  stopRunning(previous, "restarting", cap);
  const command = given || previous?.command || devCommand(workdir);
  const base = {
    command: command ?? null,
    workdir,
    appPort: Number(appPort),
    logCap: cap,
    idleMs: Number(idleMs),
    backoff: backoff.split(",").map(Number),
    startedAt: now(),
    restarts: 0,
    port: null,
    nextRestartAt: null,
  };
  fs.rmSync(file("stop"), { force: true });
  if (!command) {
    const reason = "nothing to run: no command was given and package.json has no dev script";
    writeState({ ...base, state: "crashed", reason });
    appendLines([{ stream: "system", text: reason }], cap);
    return publicStatus(readState());
  }
  fs.writeFileSync(file("active"), "");
  writeState({ ...base, state: "starting", reason: null });
  const supervisor = spawn(process.execPath, [process.argv[1], "supervise", dir], {
    detached: true,
    stdio: "ignore",
  });
  supervisor.unref();
  fs.writeFileSync(file("supervisor.pid"), String(supervisor.pid));
  return publicStatus(readState());
}

/** Asks the supervisor to stop, then kills what is left. Leaves state "stopped" with the reason. */
function stopRunning(state, reason, cap) {
  if (!state) return;
  const supervisor = supervisorPid();
  if (supervisor) {
    fs.writeFileSync(file("stop"), reason);
    signal(supervisor, "SIGTERM");
    const deadline = Date.now() + STOP_GRACE_MS + 2000;
    while (alive(supervisor) && Date.now() < deadline) sleepSync(50);
    if (alive(supervisor)) signal(supervisor, "SIGKILL");
  }
  const latest = readState() ?? state;
  // The supervisor kills the group on SIGTERM; this covers one that was SIGKILLed or had died.
  killGroup(latest.childPid, "SIGKILL");
  if (latest.state === "stopped") return;
  writeState({ ...latest, state: "stopped", reason, port: null, nextRestartAt: null });
  // Said by the supervisor when it stopped in time; said here when it had to be killed.
  if (supervisor) appendLines([{ stream: "system", text: `stopped: ${reason}` }], cap);
}

function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch {
    // Exited meanwhile.
  }
}

// ---- the supervisor --------------------------------------------------------------------------------------------

/**
 * Listening TCP sockets of a process group, from /proc: [{port, host, loopbackOnly}], host being where to reach
 * it from inside the box. Empty when /proc tells nothing (then the caller falls back to connecting).
 */
function listeningPorts(pgid) {
  const inodes = new Set();
  for (const pid of fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue;
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match) inodes.add(match[1]);
      }
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  const ports = new Map();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const row of readOr(table, "").split("\n").slice(1)) {
      const columns = row.trim().split(/\s+/);
      if (columns.length < 10 || columns[3] !== "0A" || !inodes.has(columns[9])) continue;
      const [address, portHex] = columns[1].split(":");
      const port = Number.parseInt(portHex, 16);
      const entry = ports.get(port) ?? { port, host: null, loopbackOnly: true };
      if (address === "0100007F") entry.host ??= "127.0.0.1";
      else if (address === "00000000000000000000000001000000") entry.host ??= "::1";
      else {
        entry.loopbackOnly = false;
        entry.host = address.length === 8 ? "127.0.0.1" : "::1";
        if (address === "00000000" || address === "00000000000000000000000000000000") entry.host = "127.0.0.1";
      }
      ports.set(port, entry);
    }
  }
  return [...ports.values()];
}

function connects(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.setTimeout(500);
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => (socket.destroy(), resolve(false)));
  });
}

/**
 * Makes the app reachable on 0.0.0.0:appPort, where Modal's tunnel connects: a dev server listening elsewhere
 * (Vite's 5173 on localhost) is piped to from there, so it need not be told a host or port.
 */
function bridge(appPort, target, log) {
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ host: target.host, port: target.port });
    inbound.pipe(outbound).pipe(inbound);
    const close = () => (inbound.destroy(), outbound.destroy());
    inbound.once("error", close);
    outbound.once("error", close);
  });
  server.once("error", (error) =>
    log("system", `cannot forward port ${appPort} to ${target.port} (${error.code}); listen on 0.0.0.0:${appPort}`),
  );
  server.listen(appPort, "0.0.0.0");
  return server;
}

async function supervise() {
  const { command, workdir, appPort, logCap, idleMs, backoff } = readState();
  let state = readState();
  const update = (changes) => {
    state = { ...state, ...changes };
    writeState(state);
  };
  let pending = [];
  const flush = () => {
    const batch = pending;
    pending = [];
    appendLines(batch, logCap);
  };
  const log = (stream, text) => {
    pending.push({ stream, text });
    if (pending.length >= 200) flush();
  };
  const flusher = setInterval(flush, 100);
  let child = null;
  let stopping = null;
  const stop = (reason) => {
    stopping ??= reason;
    if (child) killGroup(child.pid, "SIGTERM");
    setTimeout(() => child && killGroup(child.pid, "SIGKILL"), STOP_GRACE_MS).unref();
  };
  process.on("SIGTERM", () => stop(readOr(file("stop"), "stopped")));
  process.on("SIGINT", () => stop("stopped"));
  process.on("uncaughtException", (error) => {
    if (child) killGroup(child.pid, "SIGKILL");
    const reason = `the app's supervisor failed: ${error.message}`;
    pending.push({ stream: "system", text: reason });
    flush();
    update({ state: "crashed", reason, port: null, nextRestartAt: null });
    process.exit(1);
  });

  const idleCheck = setInterval(
    () => {
      let last = Date.now();
      try {
        last = fs.statSync(file("active")).mtimeMs;
      } catch {
        // No record: count from now.
      }
      if (Date.now() - last > idleMs) stop(`idle for ${formatDuration(idleMs)}`);
    },
    Math.min(10_000, Math.max(50, idleMs / 4)),
  );

  for (let restarts = 0; ; restarts++) {
    update({ state: "starting", restarts, port: null, reason: null, nextRestartAt: null });
    log("system", restarts === 0 ? `started \`${command}\`` : `restarted \`${command}\` (restart ${restarts})`);
    child = spawn("sh", ["-c", command], {
      cwd: workdir,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PORT: String(appPort), HOST: "0.0.0.0", BROWSER: "none" },
    });
    update({ childPid: child.pid ?? null });
    for (const stream of ["stdout", "stderr"]) {
      let partial = "";
      child[stream].setEncoding("utf8");
      child[stream].on("data", (chunk) => {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop();
        for (const text of parts) log(stream, text);
        if (partial.length > MAX_LINE_CHARS) {
          log(stream, partial);
          partial = "";
        }
      });
      child[stream].on("end", () => partial && log(stream, partial));
    }
    const ended = new Promise((resolve) => {
      child.once("exit", (code, signalName) => resolve({ code, signal: signalName }));
      child.once("error", (error) => resolve({ error }));
    });

    let over = false;
    let forwarder = null;
    const watch = (async () => {
      while (!over && !stopping) {
        const ports = listeningPorts(child.pid);
        let chosen = ports.find((entry) => entry.port === appPort) ?? ports[0];
        // /proc told nothing about the group's sockets (some kernels hide them): trust a connection to the port.
        if (!chosen && (await connects(appPort)) && !over) chosen = { port: appPort, host: "127.0.0.1" };
        if (over || stopping) return;
        if (!chosen) {
          await sleep(250);
          continue;
        }
        if (chosen.port !== appPort) forwarder = bridge(appPort, chosen, log);
        else if (chosen.loopbackOnly) {
          log("system", `listening on loopback only: the Modal tunnel needs 0.0.0.0:${appPort}`);
        }
        update({ state: "running", port: chosen.port });
        log("system", `listening on port ${chosen.port}`);
        return;
      }
    })();
    const end = await ended;
    over = true;
    await watch;
    forwarder?.close();
    const how = end.error
      ? `could not start (${end.error.message})`
      : end.signal
        ? `was killed by ${end.signal}`
        : `exited with code ${end.code}`;
    if (stopping) break;
    const delay = backoff[restarts];
    if (delay === undefined || !Number.isFinite(delay)) {
      const reason = `${how}; gave up after ${restarts} restart${restarts === 1 ? "" : "s"}`;
      log("system", reason);
      update({ state: "crashed", reason, port: null, nextRestartAt: null });
      break;
    }
    log("system", `${how}; restarting in ${formatDuration(delay)}`);
    update({ state: "crashed", reason: how, port: null, nextRestartAt: new Date(Date.now() + delay).toISOString() });
    const until = Date.now() + delay;
    while (!stopping && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
    if (stopping) break;
  }
  clearInterval(idleCheck);
  if (stopping) {
    log("system", `stopped: ${stopping}`);
    update({ state: "stopped", reason: stopping, port: null, nextRestartAt: null });
  }
  clearInterval(flusher);
  flush();
  process.exit(0);
}

function formatDuration(ms) {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

// ---- entry -----------------------------------------------------------------------------------------------------

function answer(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

if (!dir || !path.isAbsolute(dir)) {
  process.stderr.write("usage: node modal-app.mjs <op> <absolute dir> [args…]\n");
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });
switch (op) {
  case "start":
    answer(start(args));
    break;
  case "supervise":
    await supervise();
    break;
  case "status":
    answer(publicStatus(readState()));
    break;
  case "stop": {
    const state = readState();
    stopRunning(state, args[0] || "stopped", state?.logCap ?? 256 * 1024);
    answer(publicStatus(readState()));
    break;
  }
  case "logs":
    answer(readLogs(Number(args[0]) || 0, Math.max(1, Number(args[1]) || 200)));
    break;
  case "append":
    if (args[1] !== "system" && args[1] !== "browser") {
      process.stderr.write(`append takes stream "system" or "browser", not ${JSON.stringify(args[1])}\n`);
      process.exit(2);
    }
    appendLines([{ stream: args[1], text: args[2] ?? "" }], Number(args[0]));
    answer({ ok: true });
    break;
  case "touch":
    fs.writeFileSync(file("active"), "");
    answer({ ok: true });
    break;
  default:
    process.stderr.write(`unknown op ${JSON.stringify(op)}\n`);
    process.exit(2);
}
