import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The app's checkout: the nearest folder above this module with a package.json. */
let appCheckoutCache: string | undefined;
export function appCheckout(): string {
  if (appCheckoutCache) return appCheckoutCache;
  let folder = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(folder, "package.json")) && path.dirname(folder) !== folder)
    folder = path.dirname(folder);
  appCheckoutCache = folder;
  return folder;
}
