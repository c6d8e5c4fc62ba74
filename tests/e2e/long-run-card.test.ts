/**
 * What a builder sees of a long run in chromium: the live card says when the
 * conversation was compacted and when the agent was told it repeats itself,
 * and shows the tokens used and their estimated cost as the run goes; the run
 * history shows the cost. At 1280 and 390 px (screenshots in
 * test-results/screenshots/).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplayScript } from "../../model-replay/script";
import { collectPageErrors, gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { turn, type Turn } from "../support/model";
import { startStack, type Stack } from "../support/stack";

const SCRIPT = "e2e-long-run";
const PASSWORD = "a long enough password";

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  stack = await startStack({
    env: {
      AGENT_MODEL: `openai-compatible/${SCRIPT}`,
      AGENT_CONTEXT_TOKENS: "6000",
      AGENT_PRICES: `${SCRIPT}=2/8`,
    },
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function signUpAndCreateProject(page: Page, email: string): Promise<string> {
  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
  await page.getByPlaceholder(/Title/).fill("Long run");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  await gotoHydrated(page, page.url());
  return page.url();
}

/** Long outputs (compaction), then the same failing command three times (a warning), then it changes course. */
function longRun(): Turn[] {
  return [
    turn.todos(["Count", "in_progress"]),
    turn.write("notes.txt", "draft\n"),
    ...Array.from({ length: 12 }, (_, i) => turn.run(`seq ${i * 1000} ${i * 1000 + 300}`)),
    ...Array.from({ length: 3 }, () => turn.run("cat missing.txt")),
    turn.run("ls"),
    turn.reply("Counted, and found that missing.txt does not exist."),
  ];
}

describe("a long run in the browser", () => {
  for (const width of [1280, 390]) {
    it(`shows compactions, a stuck warning, tokens and cost at ${width} px`, async () => {
      stack.replay.addScript({ name: SCRIPT, turns: longRun() } as ReplayScript);
      const context = await browser.newContext({ viewport: { width, height: 900 } });
      const page = await context.newPage();
      const errors = collectPageErrors(page);
      try {
        await signUpAndCreateProject(page, `long-run-${width}-${Date.now()}@example.test`);
        const box = page.getByRole("textbox", { name: "Prompt" });
        await box.fill("Count for a while");
        await box.press("Enter");
        const card = page.locator(".live-card");
        await expect.poll(() => card.getAttribute("data-status"), { timeout: 90_000 }).toBe("complete");

        const notices = card.locator(".live-notice");
        const texts = await notices.allTextContents();
        expect(texts.some((t) => /^Step \d+: The conversation was compacted to fit the model's context/.test(t))).toBe(
          true,
        );
        expect(texts).toContainEqual(
          expect.stringMatching(
            /^Step 18: The agent seemed to be going round in circles \(it ran `cat missing\.txt` 3 times in a row with the same result\)/,
          ),
        );
        expect(await card.locator(".live-usage").textContent()).toMatch(
          /^[\d.]+k in \/ [\d.]+k? out tokens · about \$/,
        );
        await screenshot(page, `long-run-card-${width}`);

        // No sideways scrolling on a phone.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow).toBeLessThanOrEqual(0);

        await gotoHydrated(page, `${page.url().split("?")[0]}?view=runs`);
        const row = page.locator("table.run-history tbody tr").first();
        expect(await row.locator("td").nth(5).textContent()).toMatch(/^(\$\d+\.\d\d|<\$0\.01)$/);
        await screenshot(page, `long-run-history-${width}`);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });
  }
});
