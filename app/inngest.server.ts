// Server-only entry to the Inngest client and functions (see db.server.ts).
export { inngest } from "../inngest/client";
export { functions } from "../inngest/functions";
