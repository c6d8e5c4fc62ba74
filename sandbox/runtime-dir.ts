/**
 * Where the sandbox's sockets live on this host: the egress proxy's socket per project and the app process's
 * socket per project. A unix socket path may be at most 107 bytes, and DYNO_DATA_DIR can be long, so sockets go
 * under a short folder in the system's temp folder, named after the data folder: every Dyno process on this host
 * that shares a data folder finds the same sockets (an app process started by one is reachable from another).
 */
import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** 12 hex digits naming a data folder on this host (a hash of its real path): what Dyno processes sharing it share. */
export function dataDirDigest(dataDir: string): string {
  let real: string;
  try {
    real = realpathSync(dataDir);
  } catch {
    real = path.resolve(dataDir);
  }
  return createHash("sha256").update(real).digest("hex").slice(0, 12);
}

/** The runtime folder for a data folder: /tmp/dyno-<its digest>. Not created here. */
export function sandboxRuntimeDir(dataDir: string): string {
  return path.join(os.tmpdir(), `dyno-${dataDirDigest(dataDir)}`);
}

/** A project's own runtime folder (its sockets): <runtime>/<projectId>. */
export function projectRuntimeDir(dataDir: string, projectId: string): string {
  return path.join(sandboxRuntimeDir(dataDir), projectId);
}
