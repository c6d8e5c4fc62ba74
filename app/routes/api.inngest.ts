import { serve } from "inngest/remix";
import { INNGEST_SERVE_PATH, inngestServeOrigin, ownSyncRequest } from "~/inngest-serve.server";
import { functions, inngest } from "~/inngest.server";

type Serve = ReturnType<typeof serve>;

// One SDK handler per origin: with PORT=0 the origin is known only once the server listens.
const handlers = new Map<string, Serve>();
function handlerFor(origin: string): Serve {
  let handler = handlers.get(origin);
  if (!handler) {
    handler = serve({ client: inngest, functions, serveOrigin: origin, servePath: INNGEST_SERVE_PATH });
    handlers.set(origin, handler);
  }
  return handler;
}

// The engine registers the app here (GET/PUT) and calls each step (POST), always at the app's own origin.
const handler: Serve = async ({ request, context }) => {
  const origin = inngestServeOrigin();
  if (!origin) return new Response("The app's own address is not known yet", { status: 503 });
  return handlerFor(origin)({ request: request.method === "PUT" ? ownSyncRequest(request, origin) : request, context });
};

export { handler as action, handler as loader };
