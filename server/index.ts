/** `npm start` (production) and the app half of `npm run dev`. */
import { env } from "../app/env.server";
import { startAppServer } from "./app";

const { NODE_ENV, HOST, PORT } = env();
const server = await startAppServer({
  mode: NODE_ENV === "production" ? "production" : "development",
  host: HOST,
  port: PORT,
});
console.log(
  `Dyno is up at ${server.url} (previews of built apps: ${server.previewOrigins}, listening at ${server.previewUrl})`,
);

let closing = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
