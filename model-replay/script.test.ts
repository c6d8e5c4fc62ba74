import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import {
  BUNDLED_SCRIPTS_DIR,
  DEMO_SCRIPT,
  loadReplayScript,
  loadReplayScripts,
  parseReplayScript,
  type ReplayScript,
} from "./script";

const run = promisify(execFile);
const scratch = await mkdtemp(path.join(tmpdir(), "replay-script-"));
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe("replay scripts", () => {
  it("accepts replies, raw text, errors and delays", () => {
    const script = parseReplayScript({
      name: "s",
      turns: [
        { reply: { tool: "list_files" } },
        { raw: "oops" },
        { errors: [429, 500], delayMs: 10, reply: { tool: "read_file", path: "a" } },
      ],
    });
    expect(script.turns).toHaveLength(3);
  });

  it("says what is wrong with a bad script", () => {
    expect(() => parseReplayScript({ name: "s", turns: [{ reply: { tool: "x" }, raw: "y" }] }, "s.json")).toThrow(
      /Invalid s\.json:\n {2}turns\.0: a turn needs exactly one of/,
    );
    expect(() => parseReplayScript({ name: "s", turns: [{ reply: { path: "no tool" } }] })).toThrow(
      /turns\.0\.reply\.tool/,
    );
    expect(() => parseReplayScript({ name: "s", turns: [{ errors: [200], raw: "x" }] })).toThrow(/turns\.0\.errors\.0/);
    expect(() => parseReplayScript({ name: "has space", turns: [] })).toThrow(/name/);
  });

  it("names the file that is not JSON", async () => {
    const file = path.join(scratch, "broken.json");
    await writeFile(file, "{ nope");
    await expect(loadReplayScript(file)).rejects.toThrow(`Invalid replay script ${file}: not JSON`);
  });

  it("loads every bundled script, the demo among them", async () => {
    const scripts = await loadReplayScripts(BUNDLED_SCRIPTS_DIR);
    expect(scripts.map((s) => s.name)).toContain(DEMO_SCRIPT);
  });
});

describe("the offline demo script", async () => {
  const demo = await loadReplayScript(path.join(BUNDLED_SCRIPTS_DIR, `${DEMO_SCRIPT}.json`));
  const replies = demo.turns
    .map((turn) => turn.reply)
    .filter((reply): reply is NonNullable<ReplayScript["turns"][number]["reply"]> => !!reply);
  const written = new Map(
    replies.filter((reply) => reply.tool === "write_file").map((reply) => [String(reply.path), String(reply.content)]),
  );

  it("is a whole session: a plan, three files, a check, and a reply at the end", () => {
    expect(demo.turns.length).toBeGreaterThanOrEqual(8);
    expect(demo.turns.length).toBeLessThanOrEqual(14);
    expect(replies).toHaveLength(demo.turns.length);
    expect(replies[0]?.tool === "todo_write" || replies[1]?.tool === "todo_write").toBe(true);
    expect([...written.keys()].sort()).toEqual(["app.js", "index.html", "style.css"]);
    expect(replies.some((reply) => reply.tool === "run_command")).toBe(true);
    expect(replies.at(-1)?.tool).toBe("reply_to_user");
    const lastTodos = replies.filter((reply) => reply.tool === "todo_write").at(-1)?.todos as { status: string }[];
    expect(lastTodos.every((todo) => todo.status === "completed")).toBe(true);
  });

  it("writes an index.html that loads the stylesheet and the script", () => {
    const html = written.get("index.html")!;
    expect(html).toContain('<link rel="stylesheet" href="style.css">');
    expect(html).toContain('<script src="app.js"></script>');
  });

  it("writes an app.js that node --check accepts and that keeps todos in localStorage", async () => {
    const file = path.join(scratch, "app.js");
    await writeFile(file, written.get("app.js")!);
    await run(process.execPath, ["--check", file]);
    expect(written.get("app.js")).toContain("localStorage.setItem");
  });
});
