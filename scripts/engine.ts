/** `npm run engine`: find or build the Inngest engine and print where it is. */
import { describeDashboard } from "./lib/engine-ui";
import { findOrBuildEngine } from "./lib/inngest-engine";

const engine = await findOrBuildEngine();
console.error(`[engine] ${engine.source}: ${engine.bin} (${engine.version}, ${describeDashboard(engine.dashboard)})`);
console.log(engine.bin);
