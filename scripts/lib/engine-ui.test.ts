import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildDashboardInto, dashboardWish, describeDashboard, readDashboardMarker } from "./engine-ui";

let scratch: string;
beforeEach(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "dyno-engine-ui-test-"));
});
afterEach(() => rmSync(scratch, { recursive: true, force: true }));

const quiet = () => {};

describe("DYNO_ENGINE_UI", () => {
  it("reads 0 as skip, 1 as required and anything else as best effort", () => {
    expect(dashboardWish({ DYNO_ENGINE_UI: "0" })).toBe("skip");
    expect(dashboardWish({ DYNO_ENGINE_UI: "1" })).toBe("required");
    expect(dashboardWish({})).toBe("best-effort");
  });
});

describe("the dashboard marker beside an engine", () => {
  it("is unknown for an engine Dyno did not build, and says why a dashboard is missing", () => {
    const bin = path.join(scratch, "inngest");
    expect(readDashboardMarker(bin)).toBeUndefined();
    expect(describeDashboard(undefined)).toBe("dashboard unknown");
    writeFileSync(`${bin}.dashboard.json`, "not json");
    expect(readDashboardMarker(bin)).toBeUndefined();
    expect(describeDashboard({ included: false, reason: "skipped: DYNO_ENGINE_UI=0", skipped: true })).toBe(
      "without dashboard (skipped: DYNO_ENGINE_UI=0)",
    );
  });
});

describe("building the dashboard (best effort)", () => {
  it("returns the reason instead of throwing when the module has no UI source", async () => {
    const status = await buildDashboardInto(scratch, { work: scratch, log: quiet });
    expect(status).toMatchObject({ included: false, skipped: false });
    expect(describeDashboard(status)).toMatch(
      /without dashboard \(the dashboard build failed: .*no ui\/apps\/dev-server-ui/,
    );
  });

  it("names the step that failed and what it printed", async () => {
    const app = path.join(scratch, "ui/apps/dev-server-ui");
    mkdirSync(path.join(app, "src/routes"), { recursive: true });
    writeFileSync(path.join(scratch, "ui/pnpm-lock.yaml"), "lockfileVersion: '9.0'\n");
    writeFileSync(path.join(app, "package.json"), "{}\n");
    writeFileSync(
      path.join(app, "src/routes/__root.tsx"),
      "import StoreProvider from '@/components/StoreProvider';\nexport {};\n",
    );
    mkdirSync(path.join(scratch, "ui/packages/components/src/AppRoot"), { recursive: true });
    writeFileSync(path.join(scratch, "ui/packages/components/src/AppRoot/fonts.css"), "@font-face {}\n");
    // An npm that fails the way an unreachable registry does.
    const npm = path.join(scratch, "npm");
    writeFileSync(npm, "#!/bin/sh\necho 'ERR_PNPM_META_FETCH_FAIL registry unreachable' >&2\nexit 1\n");
    chmodSync(npm, 0o755);
    const status = await buildDashboardInto(scratch, { work: scratch, log: quiet, npm });
    expect(status.included).toBe(false);
    expect(describeDashboard(status)).toMatch(
      /pnpm install exited with 1:\nERR_PNPM_META_FETCH_FAIL registry unreachable/,
    );
  });

  it("refuses to guess when the root route it patches has changed", async () => {
    const app = path.join(scratch, "ui/apps/dev-server-ui");
    mkdirSync(path.join(app, "src/routes"), { recursive: true });
    writeFileSync(path.join(scratch, "ui/pnpm-lock.yaml"), "lockfileVersion: '9.0'\n");
    writeFileSync(path.join(app, "package.json"), "{}\n");
    writeFileSync(path.join(app, "src/routes/__root.tsx"), "export {};\n");
    const status = await buildDashboardInto(scratch, { work: scratch, log: quiet, npm: "/bin/false" });
    expect(describeDashboard(status)).toMatch(/__root\.tsx changed: cannot point Monaco at a local copy/);
  });
});
