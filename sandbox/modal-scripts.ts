/**
 * The shell scripts the Modal provider runs inside its sandbox, kept apart so
 * their tests can run them with this machine's sh and coreutils (the Modal
 * sandbox itself cannot be reached from the test machines).
 * Each takes its inputs as positional arguments ($1, $2), never spliced into
 * the script text, so no path or command needs quoting.
 */

/**
 * Runs the command as the leader of a new process group (setsid), after
 * writing that group's id to a file, so a timeout or abort can kill the
 * command and everything it started with one follow-up exec. The SDK's
 * ContainerProcess (0.11) has no kill or terminate, only wait().
 * $1 = the pid file, $2 = the command.
 */
export const GROUP_WRAPPER = 'echo $$ > "$1"; sh -c "$2"; status=$?; rm -f "$1"; exit $status';
/**
 * Waits briefly for the pid file (an abort can land before the wrapper
 * started), then SIGKILLs the group: `kill -KILL -PGID` (dash's kill takes no
 * "--"; a negative pid after the signal names a group), or the one process
 * should it not lead a group.
 */
export const KILL_GROUP =
  'for i in 1 2 3 4 5 6 7 8 9 10; do [ -s "$1" ] && break; sleep 0.1; done; ' +
  'pid=$(cat "$1" 2>/dev/null); if [ -n "$pid" ]; then kill -KILL "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; fi; rm -f "$1"';
/** Exit codes of the file scripts below, besides 0. */
export const MISSING = 3;
export const IS_FOLDER = 4;
export const NOT_FOLDER_OR_FILE = 5;
/** Size of file $1 on stderr, its first $2 bytes on stdout: one round trip, only the head crosses the network. */
export const READ_HEAD =
  `[ -e "$1" ] || exit ${MISSING}; [ -d "$1" ] && exit ${IS_FOLDER}; [ -f "$1" ] || exit ${NOT_FOLDER_OR_FILE}; ` +
  'stat -L -c %s -- "$1" >&2 && head -c "$2" -- "$1"';
/** Files under folder $1, pruning node_modules/.git, in tree order ("/" sorted below every other byte), first $2 of them. */
export const LIST_FILES =
  `[ -e "$1" ] || exit ${MISSING}; [ -d "$1" ] || exit ${NOT_FOLDER_OR_FILE}; ` +
  'cd -- "$1" && find . -mindepth 1 \\( -type d \\( -name node_modules -o -name .git \\) -prune \\) -o ! -type d -print0 ' +
  "| tr '/' '\\001' | LC_ALL=C sort -z | tr '\\001' '/' | head -z -n \"$2\"";

/** Runs `command` with cwd and env given by the exec; its process group id lands in `pidFile`. */
export function execArgv(pidFile: string, command: string): string[] {
  return ["setsid", "-w", "sh", "-c", GROUP_WRAPPER, "dyno-exec", pidFile, command];
}

export function killArgv(pidFile: string): string[] {
  return ["sh", "-c", KILL_GROUP, "dyno-kill", pidFile];
}

export function readHeadArgv(file: string, maxBytes: number): string[] {
  return ["sh", "-c", READ_HEAD, "dyno-read", file, String(maxBytes)];
}

export function listFilesArgv(folder: string, limit: number): string[] {
  return ["sh", "-c", LIST_FILES, "dyno-list", folder, String(limit)];
}

/**
 * One operation of the app process's supervisor script (runtime/modal-app.mjs, written into the box by
 * modal-app.ts): `node <script> <op> <stateDir> <args…>`, every input its own argument.
 */
export function appArgv(script: string, op: string, stateDir: string, args: readonly string[] = []): string[] {
  return ["node", script, op, stateDir, ...args];
}
