// Runs a command inside the sandbox with the egress bridge up: starts the forwarder (egress-forwarder.mjs) first,
// then `sh -c command` with this process's stdio, and ends the way the command ended (its exit code, or the same
// signal). Signals sent to the launcher are passed on to the command.
//
//   node launch.mjs --egress-socket /run/dyno/egress.sock [--port 3128] -- <command>
import { spawn } from "node:child_process";
import { constants } from "node:os";
import process from "node:process";
import { startEgressForwarder } from "./egress-forwarder.mjs";

function parseArgs(argv) {
  const options = { socketPath: undefined, port: 3128, command: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      options.command = argv[i + 1];
      break;
    }
    if (arg === "--egress-socket") options.socketPath = argv[++i];
    else if (arg === "--port") options.port = Number(argv[++i]);
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!options.socketPath) throw new Error("--egress-socket is required");
  if (typeof options.command !== "string") throw new Error("the command goes after --");
  return options;
}

async function main() {
  const { socketPath, port, command } = parseArgs(process.argv.slice(2));
  let server;
  try {
    server = await startEgressForwarder({ socketPath, port });
  } catch (error) {
    // Without the bridge the command would fail later with a puzzling network error; say so now.
    process.stderr.write(`dyno: the sandbox's network bridge could not start (${error.message}); running without it\n`);
  }
  // The forwarder must not keep the launcher alive once the command has ended.
  server?.unref();
  const child = spawn("sh", ["-c", command], { stdio: "inherit" });
  const forward = (signal) => () => child.kill(signal);
  const handlers = Object.fromEntries(["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"].map((s) => [s, forward(s)]));
  for (const [signal, handler] of Object.entries(handlers)) process.on(signal, handler);
  child.on("error", (error) => {
    process.stderr.write(`dyno: could not start sh: ${error.message}\n`);
    process.exit(127);
  });
  child.on("exit", (code, signal) => {
    for (const [name, handler] of Object.entries(handlers)) process.off(name, handler);
    server?.close();
    if (signal) {
      process.kill(process.pid, signal);
      // A signal Node ignores (SIGPIPE) would not end it: exit the way a shell reports a signal.
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    process.exit(code ?? 1);
  });
}

main().catch((error) => {
  process.stderr.write(`dyno: launcher failed: ${error.message}\n`);
  process.exit(125);
});
