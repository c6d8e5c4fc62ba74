import { serve } from "inngest/remix";
import { functions, inngest } from "~/inngest.server";

// The engine registers the app here (GET/PUT) and calls each step (POST).
const handler = serve({ client: inngest, functions });

export { handler as action, handler as loader };
