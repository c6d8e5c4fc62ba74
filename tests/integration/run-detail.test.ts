/**
 * What a builder sees of a finished step and of a past run, over real HTTP
 * against the whole stack: a command's output and the reason it failed are
 * in the card the page renders, and each run of the history opens to its
 * steps, outputs and files changed after later runs replaced the live card.
 * Only the project's owner sees a run; any other id answers 404.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messages } from "../../db/schema";
import { signedInCookie } from "../support/accounts";
import { createBuilder } from "../support/fixtures";
import { scripted, turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";
import { waitForRunEvent, waitForRunToFinish } from "../support/wait";

let stack: Stack;
let app: typeof import("../../app/models/runs.server");

beforeAll(async () => {
  stack = await startStack();
  app = await import("../../app/models/runs.server");
});

afterAll(async () => {
  await stack?.stop();
});

/** The page's HTML as the server renders it, with React's escapes undone for matching. */
async function page(path: string, cookie: string): Promise<{ status: number; html: string }> {
  const response = await fetch(`${stack.app.url}${path}`, { headers: { Cookie: cookie } });
  const html = (await response.text())
    .replace(/&#x27;|&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
  return { status: response.status, html };
}

/** The run detail's part of the page (the work pane), so the transcript's copy of a prompt does not count. */
const detailOf = (html: string) => /<article[^>]*class="run-detail"[\s\S]*?<\/article>/.exec(html)?.[0] ?? "";

// What it prints is not in its own text, so the page can show it only from the command's output.
const FAILING = "printf 'built %s\\n' part-one; printf 'missing %s\\n' module-x >&2; exit 3";
/** The step's output block: status line (the reason), stdout and stderr. */
const OUTPUT =
  /<pre>\$ printf[^<]*\(exited with code 3 after [\d.]+ s\)\nstdout:\nbuilt part-one\n\nstderr:\nmissing module-x\n<\/pre>/;

describe("a finished step's output and a past run's detail", () => {
  it("shows a failed command's stdout, stderr and reason in the card, then in the first run's detail after a later run", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const cookie = await signedInCookie(user.id);

    const first = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Build the thing", mode: "build" },
      model: scripted(stack.replay, [
        turn.write("notes.txt", "first run\n"),
        turn.run(FAILING),
        turn.reply("It failed, see above."),
      ]),
    });
    expect((await waitForRunToFinish(stack.database, first, 60_000)).type).toBe("complete");

    // The live card, as the page renders it once the run is done.
    const live = await page(`/projects/${project.id}`, cookie);
    expect(live.status).toBe(200);
    expect(live.html).toMatch(OUTPUT);
    expect(live.html).toContain("Exit code 3");
    expect(live.html).toContain("Done in 3 iterations");

    const second = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Now something else", mode: "build" },
      model: scripted(stack.replay, [turn.reply("Nothing to do.")]),
    });
    expect((await waitForRunToFinish(stack.database, second, 60_000)).type).toBe("complete");

    // The latest card is the second run's; the first run's steps are gone from it...
    const after = await page(`/projects/${project.id}`, cookie);
    expect(after.html).not.toContain("missing module-x");
    // ...and the Runs tab opens the first run to its steps, outputs and files changed.
    const history = await page(`/projects/${project.id}?view=runs`, cookie);
    expect(history.html).toContain(`?view=runs&run=${first.id}`);
    const opened = await page(`/projects/${project.id}?view=runs&run=${first.id}`, cookie);
    expect(opened.status).toBe(200);
    const detail = detailOf(opened.html);
    expect(detail).toContain("Build the thing");
    expect(detail).toContain(`data-run-id="${first.id}"`);
    expect(detail).toContain("notes.txt");
    expect(detail).toContain("Created notes.txt");
    expect(detail).toMatch(OUTPUT);
    expect(detail).toContain("Exit code 3");
    expect(detail).not.toContain("Nothing to do.");
    // Read-only: no Stop, no live controls.
    expect(detail).not.toMatch(/value="stop"/);
  });

  it("answers 404 for another builder, a run of another project and an id that is not a run", async () => {
    const { db } = stack.database;
    const owner = await createBuilder(db);
    const other = await createBuilder(db);
    const run = await app.startRun(db, {
      userId: owner.user.id,
      projectId: owner.project.id,
      input: { prompt: "Private prompt", mode: "build" },
      model: scripted(stack.replay, [turn.run("printf 'private-%s' output"), turn.reply("Done.")]),
    });
    await waitForRunToFinish(stack.database, run, 60_000);
    const ownerCookie = await signedInCookie(owner.user.id);
    const otherCookie = await signedInCookie(other.user.id);

    expect((await page(`/projects/${owner.project.id}?view=runs&run=${run.id}`, ownerCookie)).status).toBe(200);

    const stranger = await page(`/projects/${owner.project.id}?view=runs&run=${run.id}`, otherCookie);
    expect(stranger.status).toBe(404);
    expect(stranger.html).not.toContain("private-output");
    // The stranger's own project does not open the owner's run either.
    const crossed = await page(`/projects/${other.project.id}?view=runs&run=${run.id}`, otherCookie);
    expect(crossed.status).toBe(404);
    expect(crossed.html).not.toContain("private-output");
    expect(crossed.html).not.toContain("Private prompt");

    for (const bad of ["not-a-uuid", "00000000-0000-4000-8000-000000000000", "%27%3B--", ""]) {
      const answer = await page(`/projects/${owner.project.id}?view=runs&run=${bad}`, ownerCookie);
      expect(answer.status, bad).toBe(404);
      expect(answer.html, bad).not.toMatch(/select|where|stack|at \w+ \(/i);
    }
  });

  it("says how a stopped run ended, with a proper plural, in the card and the transcript", async () => {
    const { db } = stack.database;
    const { user, project } = await createBuilder(db);
    const cookie = await signedInCookie(user.id);
    const run = await app.startRun(db, {
      userId: user.id,
      projectId: project.id,
      input: { prompt: "Take your time", mode: "build" },
      // The model takes its time over the first step: the stop lands while iteration 1 is in flight.
      model: scripted(stack.replay, [turn.run("true", { delayMs: 20_000 }), turn.reply("Done.")]),
    });
    await waitForRunEvent(stack.database, {
      projectId: project.id,
      runId: run.id,
      until: (e) => e.type === "thinking",
    });
    await app.stopRun(db, { userId: user.id, runId: run.id });
    expect((await waitForRunToFinish(stack.database, run, 30_000)).type).toBe("stopped");

    const notices = await db.select().from(messages).where(eq(messages.runId, run.id)).orderBy(asc(messages.createdAt));
    expect(notices.filter((m) => m.role === "system").map((m) => m.content)).toEqual(["Stopped after 1 iteration."]);
    const { html } = await page(`/projects/${project.id}`, cookie);
    expect(html).toMatch(/<label[^>]*>Stopped after 1 iteration<\/label>/);
    expect(html).not.toContain("iteration(s)");
  });
});
