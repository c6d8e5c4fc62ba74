/**
 * What Vite's dev server must not watch: the folders the app itself writes
 * while it runs. DYNO_DATA_DIR holds the agent's workspaces (an .html file
 * written there makes Vite reload every open page, losing half-typed
 * prompts), PGlite, logs and the session secret; build/ is `remix
 * vite:build`'s output; test-results/ the tests' screenshots. Wherever they
 * point, inside the checkout they are left out.
 */
import path from "node:path";

export function unwatchedFolders(dataDir: string, root: string = process.cwd()): string[] {
  const folders = [dataDir, "build", "test-results"].map((folder) => path.resolve(root, folder));
  // A folder that holds the checkout itself cannot be left out without blinding the watcher to the app's code.
  return folders.filter((folder) => !isInside(root, folder));
}

/** A chokidar `ignored` matcher: true for the folders and everything in them. */
export function insideAnyOf(folders: readonly string[]): (file: string) => boolean {
  return (file) => folders.some((folder) => isInside(path.resolve(file), folder));
}

function isInside(file: string, folder: string): boolean {
  const relative = path.relative(folder, file);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}
