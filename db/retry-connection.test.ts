import getPort from "get-port";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { createTestDatabase } from "../tests/support/database";
import { isConnectionError, retryOnConnectionError } from "./retry-connection";

const hasPostgres = Boolean(process.env.DATABASE_URL);

/** A real postgres.js error: connecting to a port nothing listens on. */
async function refusedConnectionError(): Promise<unknown> {
  const port = await getPort({ host: "127.0.0.1" });
  const sql = postgres(`postgres://postgres@127.0.0.1:${port}/none`, {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  });
  try {
    return await sql`select 1`.then(
      () => undefined,
      (error: unknown) => error,
    );
  } finally {
    await sql.end({ timeout: 1 });
  }
}

describe("isConnectionError", () => {
  it("recognises a refused connection, also when Drizzle wraps it", async () => {
    const refused = await refusedConnectionError();
    expect(isConnectionError(refused)).toBe(true);
    expect(isConnectionError(Object.assign(new Error("Failed query: select 1\nparams: "), { cause: refused }))).toBe(
      true,
    );
  });

  it.skipIf(!hasPostgres)("does not take a query the server refused for one", async () => {
    const t = await createTestDatabase("postgres");
    try {
      const error = await t.database.db.execute("select * from no_such_table").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(isConnectionError(error)).toBe(false);
    } finally {
      await t.drop();
    }
  });
});

describe("retryOnConnectionError", () => {
  it("saves again after connection errors until the write goes through", async () => {
    const refused = await refusedConnectionError();
    let calls = 0;
    const saved = await retryOnConnectionError(
      async () => {
        if (++calls < 3) throw refused;
        return "saved";
      },
      { firstDelayMs: 1 },
    );
    expect(saved).toBe("saved");
    expect(calls).toBe(3);
  });

  it("fails at once on any other error, and gives up on connection errors after its window", async () => {
    let calls = 0;
    const other = new Error("duplicate key value");
    await expect(
      retryOnConnectionError(async () => {
        calls++;
        throw other;
      }),
    ).rejects.toBe(other);
    expect(calls).toBe(1);

    const refused = await refusedConnectionError();
    calls = 0;
    await expect(
      retryOnConnectionError(
        async () => {
          calls++;
          throw refused;
        },
        { withinMs: 50, firstDelayMs: 5 },
      ),
    ).rejects.toBe(refused);
    expect(calls).toBeGreaterThan(1);
  });
});
