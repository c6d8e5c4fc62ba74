/**
 * The app server as a process of its own, for tests that kill it (SIGKILL)
 * and start it again. Configured entirely by its environment, like `npm start`.
 */
import { startAppServer } from "../../server/app";

const server = await startAppServer({ mode: "development", port: Number(process.env.PORT), watch: false });
console.log(`ready ${server.url}`);
