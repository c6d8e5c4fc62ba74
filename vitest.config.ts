import tsconfigPaths from "vite-tsconfig-paths";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [tsconfigPaths()],
  test: {
    include: [
      "{app,db,inngest,metrics,model-replay,sandbox,scripts,server,versions}/**/*.test.ts",
      "tests/**/*.test.ts",
    ],
    globalSetup: ["tests/support/global-setup.ts"],
    // Each file gets its own process: the app's database singleton and env
    // are per process, and integration tests start servers of their own.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 600_000,
    // Integration files each start an engine; on 2 cores, one at a time.
    fileParallelism: false,
    env: {
      NO_PROXY: "127.0.0.1,localhost",
      DO_NOT_TRACK: "1",
    },
  },
});
