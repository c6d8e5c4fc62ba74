import path from "node:path";
import { describe, expect, it } from "vitest";
import { insideAnyOf, unwatchedFolders } from "./dev-watch";

describe("the folders the dev server does not watch", () => {
  const root = path.resolve("/srv/dyno");

  it("leaves out the data folder wherever it points, the build output and test results", () => {
    const ignored = insideAnyOf(unwatchedFolders(".data", root));
    expect(ignored(path.join(root, ".data/workspaces/p1/index.html"))).toBe(true);
    expect(ignored(path.join(root, ".data"))).toBe(true);
    expect(ignored(path.join(root, "build/client/index.js"))).toBe(true);
    expect(ignored(path.join(root, "test-results/screenshots/a.png"))).toBe(true);
    expect(ignored(path.join(root, "app/root.tsx"))).toBe(false);
    expect(ignored(path.join(root, ".database/x.html"))).toBe(false);

    const elsewhere = insideAnyOf(unwatchedFolders("var/projects", root));
    expect(elsewhere(path.join(root, "var/projects/workspaces/p1/page.html"))).toBe(true);
    expect(elsewhere(path.join(root, "var/other.html"))).toBe(false);
  });

  it("never leaves out the checkout itself, even when the data folder holds it", () => {
    expect(unwatchedFolders(".", root)).not.toContain(root);
    expect(unwatchedFolders("..", root)).not.toContain(path.dirname(root));
    expect(insideAnyOf(unwatchedFolders("/srv", root))(path.join(root, "app/root.tsx"))).toBe(false);
  });
});
