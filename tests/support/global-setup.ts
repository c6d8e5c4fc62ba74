import type { TestProject } from "vitest/node";
import { findOrBuildEngine } from "../../scripts/lib/inngest-engine";

declare module "vitest" {
  export interface ProvidedContext {
    engineBin: string;
  }
}

/** Finds or builds the real Inngest engine once for the whole run. */
export default async function setup(project: TestProject) {
  const engine = await findOrBuildEngine();
  console.log(`[tests] Inngest engine ${engine.version} (${engine.source}): ${engine.bin}`);
  project.provide("engineBin", engine.bin);
}
