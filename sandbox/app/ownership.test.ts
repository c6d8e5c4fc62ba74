/**
 * askOwner against owners that go away mid-request. The replicas test met one in the fresh-clone CI: an owner that
 * exits with a connection still waiting to be accepted resets it (ECONNRESET), the same news as a close without a
 * reply: there is no owner to answer, so the caller decides again.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { askOwner } from "./ownership";

/** A process that binds `address`, then exits without ever accepting (its event loop busy until then). */
function ownerThatExitsUnaccepted(address: string) {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const server = require("node:net").createServer();
       server.listen(${JSON.stringify(address)}, () => {
         process.stdout.write("listening\\n");
         const end = Date.now() + 500;
         while (Date.now() < end) {}
         process.exit(0);
       });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const listening = new Promise((resolve) => child.stdout.once("data", resolve));
  return { listening };
}

describe("asking a project's owner", () => {
  it("treats a connection the owner reset as going away: no owner, no error", async () => {
    const address = `\0dyno-app-test/${randomUUID()}`;
    const owner = ownerThatExitsUnaccepted(address);
    await owner.listening;
    await expect(askOwner(address, Buffer.alloc(32), { op: "status" })).resolves.toBeUndefined();
  });

  it("finds no owner where nobody holds the name", async () => {
    await expect(
      askOwner(`\0dyno-app-test/${randomUUID()}`, Buffer.alloc(32), { op: "status" }),
    ).resolves.toBeUndefined();
  });
});
