/** `npm run engine`: find or build the Inngest engine and print where it is. */
import { findOrBuildEngine } from "./lib/inngest-engine";

const engine = await findOrBuildEngine();
console.error(`[engine] ${engine.source}: ${engine.bin} (${engine.version})`);
console.log(engine.bin);
