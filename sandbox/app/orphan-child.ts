/**
 * A stand-in for another Dyno process in the orphan and replica tests (orphans.test.ts, replicas.test.ts): opens a
 * project's local sandbox, starts its app process and says "ready" with the port, then waits to be killed.
 * Configured by its arguments:
 *   tsx sandbox/app/orphan-child.ts <dataDir> <projectId> <isolation> <command> [idleTimeoutMs]
 */
import { openLocalSandbox } from "../local";

const [dataDir, projectId, isolation, command, idleTimeoutMs] = process.argv.slice(2);
if (!dataDir || !projectId || !command || (isolation !== "bubblewrap" && isolation !== "none")) {
  throw new Error("usage: orphan-child.ts <dataDir> <projectId> <bubblewrap|none> <command>");
}
const sandbox = await openLocalSandbox({
  dataDir,
  projectId,
  isolation,
  ...(idleTimeoutMs && { app: { idleTimeoutMs: Number(idleTimeoutMs) } }),
});
const status = await sandbox.app.start({ command });
console.log(`ready ${JSON.stringify(status)}`);
setInterval(() => {}, 60_000);
