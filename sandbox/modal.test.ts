import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { describeSandboxContract } from "./contract";
import { openModalSandbox } from "./modal";
import { SandboxUnavailableError } from "./types";

const tokenId = process.env.MODAL_TOKEN_ID;
const tokenSecret = process.env.MODAL_TOKEN_SECRET;
const haveCredentials = Boolean(tokenId && tokenSecret);

describe("modal provider without credentials", () => {
  it("says which variables to set", async () => {
    const error = await openModalSandbox({ projectId: randomUUID() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxUnavailableError);
    expect((error as Error).message).toContain("MODAL_TOKEN_ID");
    expect((error as Error).message).toContain("MODAL_TOKEN_SECRET");
  });
});

// These talk to Modal for real: they need network access and a Modal token.
describe.skipIf(!haveCredentials)("modal provider (set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET to run)", () => {
  describeSandboxContract("modal", () =>
    openModalSandbox({ projectId: randomUUID(), tokenId, tokenSecret, appName: "dyno-tests" }),
  );

  it("reattaches to a running sandbox by id and gives a tunnel URL for the preview", async () => {
    const projectId = randomUUID();
    const first = await openModalSandbox({ projectId, tokenId, tokenSecret, appName: "dyno-tests" });
    try {
      await first.writeFile("kept.txt", "still here");
      const again = await openModalSandbox({
        projectId,
        sandboxId: first.id,
        tokenId,
        tokenSecret,
        appName: "dyno-tests",
      });
      expect(again.id).toBe(first.id);
      expect((await again.readFile("kept.txt")).content).toBe("still here");
      const preview = await again.preview();
      expect(preview.kind).toBe("url");
    } finally {
      await first.destroy();
    }
    const replaced = await openModalSandbox({
      projectId,
      sandboxId: first.id,
      tokenId,
      tokenSecret,
      appName: "dyno-tests",
    });
    try {
      expect(replaced.id).not.toBe(first.id);
    } finally {
      await replaced.destroy();
    }
  }, 180_000);
});
