import { vitePlugin as remix } from "@remix-run/dev";
import { defineConfig } from "vite";
import tsconfigPaths from "vite-tsconfig-paths";

declare module "@remix-run/node" {
  interface Future {
    v3_singleFetch: true;
  }
}

export default defineConfig({
  plugins: [
    remix({
      future: {
        v3_fetcherPersist: true,
        v3_relativeSplatPath: true,
        v3_throwAbortReason: true,
        v3_singleFetch: true,
        v3_lazyRouteDiscovery: true,
      },
    }),
    tsconfigPaths(),
  ],
  optimizeDeps: {
    // Server-only packages the client dependency scan reaches through
    // loaders' imports: Remix strips them from the browser bundle, but the
    // pre-bundler would still try (and fail) to bundle their native code.
    // Excluding them also keeps a first page load from finding them late and
    // reloading the page while the optimizer re-runs.
    exclude: [
      "@node-rs/argon2",
      "@boundaryml/baml",
      "@electric-sql/pglite",
      "modal",
      "@remix-run/node",
      "drizzle-orm",
      "postgres",
      "inngest",
      "rate-limiter-flexible",
      "fflate",
    ],
    // Browser dependencies reached only from routes found late (or, for the diff view's highlighter, loaded on
    // demand): bundle them up front. highlight.js is bundled with it, so it is not in the exclude list above.
    include: ["react-markdown", "remark-gfm", "zod", "diff2html/lib-esm/ui/js/diff2html-ui-slim"],
  },
  ssr: {
    // Native or Node-only modules: load them from node_modules at run time, never bundle them.
    external: ["@boundaryml/baml", "@electric-sql/pglite", "modal", "@node-rs/argon2"],
  },
});
