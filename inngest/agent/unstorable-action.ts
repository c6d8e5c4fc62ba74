/**
 * Saving escapes NUL bytes and lone surrogates (db/pg-safe.ts). For what an
 * action carries (a file's content, a message) that is right; for the path or
 * the command an action names it would quietly change its target ("a\0b.txt"
 * would become "a\uFFFDb.txt"), so such an action is refused instead, with
 * the reason the sandbox itself gives, and the model reads it as the result.
 */
import { pgSafeText } from "../../db/pg-safe";
import { SandboxPathError } from "../../sandbox";
import { refuseCommand } from "../../sandbox/exec-common";
import { normalizeWorkspacePath } from "../../sandbox/paths";
import type { AgentAction } from "./model/next-action";

function pathRefusal(path: string): string {
  try {
    normalizeWorkspacePath(path);
  } catch (error) {
    if (error instanceof SandboxPathError) return error.message;
    throw error;
  }
  return `Path ${JSON.stringify(path)} contains characters that cannot be part of a file name (a lone UTF-16 surrogate)`;
}

/** Why the action cannot run as given, or undefined when it can. */
export function unstorableTarget(action: AgentAction): string | undefined {
  if ("path" in action && typeof action.path === "string" && pgSafeText(action.path) !== action.path) {
    return pathRefusal(action.path);
  }
  if (action.tool === "run_command" && pgSafeText(action.command) !== action.command) {
    return (
      refuseCommand(action.command)?.replace(/^dyno: /, "") ??
      "The command contains characters that cannot be part of a shell command (a lone UTF-16 surrogate); nothing was run"
    );
  }
  return undefined;
}
