/* global process, setTimeout, clearTimeout */
// The app process's launcher, run by Node INSIDE the sandbox (plain JavaScript, no dependencies: the app's checkout
// is not visible in there, only this folder, bound read-only).
//
//   node app-launch.mjs --listen-fd 4 [--egress /run/dyno/egress.sock] -- sh -c "npm run dev"
//   node app-launch.mjs --socket /path/app.sock -- …   (listens on a path itself: by hand)
//
// It starts the command in a process group of its own, finds the port the command listens on by reading
// /proc/net/tcp and /proc/net/tcp6 (the sandbox's own network namespace: nothing else listens there but the egress
// forwarder on 3128), and bridges the unix socket to that port, so the host can reach a dev server that has no
// network of its own. The supervisor makes the socket on the host, in a folder the sandbox cannot see, and hands it
// in already listening (fd 4): the app cannot swap the socket file for a link to some other socket of the host. It tells the supervisor what happened as JSON lines on fd 3:
//   {"type":"port","port":5173,"host":"::1"}   {"type":"exit","code":1,"signal":null}   {"type":"error","message":"…"}
// The command's stdout and stderr are the launcher's own (the supervisor's pipes); fd 3 is not passed on. Port
// listeners count only when a socket of the command's own process tree holds them (so, without bubblewrap, a port of
// some other process on the host is never taken for the app's).
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, rmSync, writeSync } from "node:fs";
import net from "node:net";

const EGRESS_PORT = 3128;
/** Port checks while waiting for the first listener, then while it runs (a dev server may move to another port). */
const FIRST_POLL_MS = 100;
const RUNNING_POLL_MS = 1000;
/** How long the command has to end after SIGTERM before the whole group gets SIGKILL. */
const TERM_GRACE_MS = 3000;

function report(message) {
  try {
    writeSync(3, `${JSON.stringify(message)}\n`);
  } catch {
    // No supervisor on fd 3 (run by hand): nothing to tell.
  }
}

function parseArgs(argv) {
  const options = { socket: undefined, listenFd: undefined, egress: undefined, command: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      options.command = argv.slice(i + 1);
      break;
    }
    if (arg === "--socket") options.socket = argv[++i];
    else if (arg === "--listen-fd") options.listenFd = Number(argv[++i]);
    else if (arg === "--egress") options.egress = argv[++i];
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!options.socket && !Number.isInteger(options.listenFd)) throw new Error("--listen-fd <fd> or --socket <path>");
  if (!options.command.length) throw new Error("no command after --");
  return options;
}

/** "0100007F" (little-endian IPv4) -> "127.0.0.1". */
function ipv4(hex) {
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(".");
}

/** Where to connect to reach a listener bound to this /proc/net address. */
function reachableHost(hex, family) {
  if (family === 4) {
    const address = ipv4(hex);
    return address === "0.0.0.0" ? "127.0.0.1" : address;
  }
  // An IPv4-mapped address (::ffff:a.b.c.d) is stored as 0000000000000000FFFF0000 + the IPv4 word.
  if (hex.slice(0, 24).toUpperCase() === "0000000000000000FFFF0000") return ipv4(hex.slice(24));
  return "::1";
}

/** Socket inodes held open by rootPid and its descendants (so listeners of other processes are never taken). */
function treeSocketInodes(rootPid) {
  const children = new Map();
  let entries = [];
  try {
    entries = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry));
  } catch {
    return new Set();
  }
  for (const entry of entries) {
    try {
      const text = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const inodes = new Set();
  const pending = [rootPid];
  const seen = new Set();
  while (pending.length) {
    const pid = pending.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkOrEmpty(`/proc/${pid}/fd/${fd}`));
        if (match) inodes.add(match[1]);
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
    pending.push(...(children.get(pid) ?? []));
  }
  return inodes;
}

function readlinkOrEmpty(file) {
  try {
    return readlinkSync(file);
  } catch {
    return "";
  }
}

/** LISTEN sockets of this network namespace held by the command's process tree, in file order: [{ port, host }]. */
function listeningPorts(rootPid) {
  const tcp = readNet("/proc/net/tcp");
  const tcp6 = readNet("/proc/net/tcp6");
  const owned = treeSocketInodes(rootPid);
  const found = [];
  for (const [text, family] of [
    [tcp, 4],
    [tcp6, 6],
  ]) {
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== "0A" || !owned.has(fields[9])) continue;
      const [addressHex, portHex] = fields[1].split(":");
      const port = parseInt(portHex, 16);
      if (!port || port === EGRESS_PORT || found.some((f) => f.port === port)) continue;
      found.push({ port, host: reachableHost(addressHex, family) });
    }
  }
  return found;
}

function readNet(file) {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** The listener to bridge to: the one already chosen while it lasts, else PORT's (the hint), else the lowest. */
function choose(ports, current, hint) {
  if (current && ports.some((p) => p.port === current.port)) return current;
  return ports.find((p) => p.port === hint) ?? [...ports].sort((a, b) => a.port - b.port)[0];
}

/** The bridge: each connection to the socket is piped to the current target (refused until there is one). */
function startBridge(options, currentTarget) {
  const server = net.createServer((client) => {
    const target = currentTarget();
    if (!target) return client.destroy();
    const upstream = net.connect(target.port, target.host);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  server.on("error", (error) => report({ type: "error", message: `the bridge socket failed: ${error.message}` }));
  if (options.socket) {
    rmSync(options.socket, { force: true });
    server.listen(options.socket);
  } else server.listen({ fd: options.listenFd });
  return server;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const env = { ...process.env };
  if (options.egress) {
    // Written by the egress work (sandbox/runtime/egress-forwarder.mjs); only loaded when asked for.
    const { startEgressForwarder } = await import("./egress-forwarder.mjs");
    await startEgressForwarder({ socketPath: options.egress, port: EGRESS_PORT, host: "127.0.0.1" });
    const proxy = `http://127.0.0.1:${EGRESS_PORT}`;
    for (const name of ["npm_config_https_proxy", "npm_config_proxy", "HTTPS_PROXY", "HTTP_PROXY"]) env[name] ??= proxy;
  }

  const [file, ...args] = options.command;
  const child = spawn(file, args, { stdio: ["ignore", "inherit", "inherit"], detached: true, env });
  const hint = Number(env.PORT) || undefined;
  let target;
  const bridge = startBridge(options, () => target);
  let timer;
  let ending = false;

  const killGroup = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const poll = () => {
    const next = choose(listeningPorts(child.pid), target, hint);
    if (next && (!target || next.port !== target.port || next.host !== target.host)) {
      target = next;
      report({ type: "port", port: target.port, host: target.host });
    }
    timer = setTimeout(poll, target ? RUNNING_POLL_MS : FIRST_POLL_MS);
  };

  child.on("error", (error) => {
    report({ type: "error", message: `could not start ${file}: ${error.message}` });
    process.exit(127);
  });
  child.on("exit", (code, signal) => {
    clearTimeout(timer);
    report({ type: "exit", code, signal });
    bridge.close();
    if (options.socket) rmSync(options.socket, { force: true });
    // Whatever the command left behind in its group goes too (the pid namespace ends with this process anyway).
    killGroup("SIGKILL");
    process.exit(code ?? 1);
  });
  const end = () => {
    if (ending) return;
    ending = true;
    killGroup("SIGTERM");
    setTimeout(() => killGroup("SIGKILL"), TERM_GRACE_MS).unref();
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, end);
  // The supervisor holds our stdin open: when it closes, Dyno is gone (even SIGKILLed, even without bubblewrap's
  // --die-with-parent), and the app must not outlive it. Then there is no grace to give.
  process.stdin.on("data", () => {});
  process.stdin.on("end", () => {
    end();
    killGroup("SIGKILL");
    process.exit(137);
  });
  process.stdin.on("error", () => {});
  poll();
}

main().catch((error) => {
  report({ type: "error", message: error instanceof Error ? error.message : String(error) });
  process.exit(126);
});
