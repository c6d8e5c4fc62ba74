/**
 * A new builder's first minutes in a real browser (chromium through
 * playwright-core) against the whole stack with no model configured: one
 * clear no-model notice with the demo offered, renaming from the builder
 * page, deleting only after a confirmation step (with and without
 * JavaScript), the not-found page, and no failed request for a favicon.
 * Screenshots at 1280 and 390 px wide go to test-results/screenshots/.
 */
import { eq } from "drizzle-orm";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projects } from "../../db/schema";
import { gotoHydrated, launchBrowser, screenshot } from "../support/browser";
import { startStack, type Stack } from "../support/stack";

const PASSWORD = "a long enough password";
const WIDTHS = [1280, 390] as const;

let stack: Stack;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Requests that answered 404, over the whole file. */
const notFound: string[] = [];

beforeAll(async () => {
  delete process.env.AGENT_MODEL;
  stack = await startStack();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[first-use page] ${error.message}`));
  page.on("response", (response) => {
    if (response.status() === 404) notFound.push(response.url());
  });
  await gotoHydrated(page, `${stack.app.url}/signup`);
  await page.getByLabel("Email").fill(`first-use-${Date.now()}@example.test`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create your account" }).click();
  await page.waitForURL(/\/projects$/);
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function createProject(title: string): Promise<string> {
  await gotoHydrated(page, `${stack.app.url}/projects`);
  await page.getByPlaceholder(/Title/).fill(title);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  await gotoHydrated(page, page.url());
  return page.url().split("/").at(-1)!;
}

/** Screenshots of the page as it is, at each width. */
async function screenshots(name: string) {
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 860 });
    await screenshot(page, `first-use-${name}-${width}`);
  }
  await page.setViewportSize({ width: 1280, height: 860 });
}

const titleOf = async (id: string) =>
  (await stack.database.db.select().from(projects).where(eq(projects.id, id)))[0]?.title;

describe("a builder's first use", () => {
  it("sees one no-model notice, a disabled box and Send, and the demo offered", async () => {
    await createProject("First look");
    const notice = page.locator(".no-model");
    await expect.poll(() => notice.count()).toBe(1);
    const text = await page.locator("body").innerText();
    expect(text.split("No model is configured").length - 1).toBe(1);
    expect(await page.getByRole("alert").count()).toBe(0);
    expect(await page.getByRole("textbox", { name: "Prompt" }).isDisabled()).toBe(true);
    expect(await page.getByRole("button", { name: "Send" }).isDisabled()).toBe(true);
    expect(await page.getByRole("radio", { name: "Ask" }).isDisabled()).toBe(true);
    expect(await notice.getByRole("button", { name: "Run the offline demo" }).isEnabled()).toBe(true);
    await screenshots("builder-no-model");
  });

  it("renames the project from the builder page; a blank title is refused with a message", async () => {
    const id = await createProject("Weekend plans");
    const header = page.locator(".app-header");
    await header.getByText("Rename", { exact: true }).click();
    const input = header.getByRole("textbox", { name: /New title/ });
    await input.fill("   ");
    await header.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => header.getByRole("alert").textContent()).toBe("Give the project a title.");
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Weekend plans");
    expect(await titleOf(id)).toBe("Weekend plans");
    await screenshots("builder-rename-refused");

    await input.fill("Garden planner");
    await header.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Garden planner");
    expect(await titleOf(id)).toBe("Garden planner");
    expect(await header.getByRole("alert").count()).toBe(0);
    await expect.poll(() => page.title()).toBe("Garden planner · Dyno");
  });

  it("deletes a project only after a confirmation step, which Cancel backs out of", async () => {
    const id = await createProject("Old experiment");
    await gotoHydrated(page, `${stack.app.url}/projects`);
    const item = page.locator(`[data-project-id="${id}"]`);
    await item.getByRole("link", { name: /Delete Old experiment/ }).click();
    const confirmation = item.getByRole("group", { name: "Delete “Old experiment”?" });
    await confirmation.waitFor();
    expect(await confirmation.innerText()).toMatch(/cannot be undone/);
    expect(await titleOf(id)).toBe("Old experiment");
    await screenshots("projects-confirm-delete");

    await confirmation.getByRole("link", { name: "Cancel" }).click();
    await expect.poll(() => confirmation.count()).toBe(0);
    expect(await titleOf(id)).toBe("Old experiment");

    await item.getByRole("link", { name: /Delete Old experiment/ }).click();
    await confirmation.getByRole("button", { name: "Delete project" }).click();
    await expect.poll(() => item.count(), { timeout: 20_000 }).toBe(0);
    expect(await page.getByRole("status").filter({ hasText: "Project deleted." }).count()).toBe(1);
    expect(await titleOf(id)).toBeUndefined();
  });

  it("confirms a delete without JavaScript too", async () => {
    const id = await createProject("No script");
    const plain = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 860 } });
    try {
      await plain.addCookies(await context.cookies());
      const noJs = await plain.newPage();
      await noJs.goto(`${stack.app.url}/projects`);
      const item = noJs.locator(`[data-project-id="${id}"]`);
      await item.getByRole("link", { name: /Delete No script/ }).click();
      await noJs.waitForURL(/\?delete=/);
      expect(await titleOf(id)).toBe("No script");
      await item.getByRole("button", { name: "Delete project" }).click();
      await noJs.waitForLoadState("load");
      expect(await noJs.locator(`[data-project-id="${id}"]`).count()).toBe(0);
      expect(await titleOf(id)).toBeUndefined();
    } finally {
      await plain.close();
    }
  });

  it("meets a not-found page of the app's own for an unknown address, with a way back", async () => {
    const response = await gotoHydrated(page, `${stack.app.url}/projects/not-a-project/or-anything`);
    expect(response?.status()).toBe(404);
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Page not found");
    expect(await page.locator("body").innerText()).not.toMatch(/No route matches/);
    await screenshots("not-found");
    await page.getByRole("link", { name: "Back to your projects" }).click();
    await page.waitForURL(/\/projects$/);
    // The 404 above was the page itself; nothing else (no favicon) answered 404 on any page.
    expect(notFound.filter((url) => !url.includes("/not-a-project/"))).toEqual([]);
  });
});
