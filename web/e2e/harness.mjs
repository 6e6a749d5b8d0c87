// What the e2e tests share: the built page (web/dist) served locally, one headless Chromium
// (Debian's, driven through playwright-core) per test file, and helpers to open the page and
// read what it shows.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve } from "../serve.mjs";

export const here = fileURLToPath(new URL(".", import.meta.url));
export const webDir = resolve(here, "..");
const dist = join(webDir, "dist");
export const artifacts = process.env.PODNET_E2E_ARTIFACTS ?? resolve(webDir, "..", "target", "e2e-artifacts");
const executablePath = process.env.PODNET_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let browser;
let server;
let url;

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), `${dist} is not built: run cargo xtask playground --no-serve`);
  mkdirSync(artifacts, { recursive: true });
  ({ server, url } = await serve({ dir: dist, port: 0 }));
  browser = await chromium.launch({ executablePath, args: ARGS });
});

after(async () => {
  await browser?.close();
  await new Promise((ok) => (server ? server.close(ok) : ok()));
});

/** A fresh page with the playground loaded; page errors fail the test at the end. */
export async function open(query = "", viewport = { width: 1680, height: 1150 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  await page.goto(url + query);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  return {
    page,
    errors,
    async close() {
      await context.close();
      assert.deepEqual(errors, [], "no errors in the page");
    },
  };
}

export const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
export const text = (page, testid) => page.locator(`[data-testid="${testid}"]`).first().innerText();

/** What the page shows for the displayed moment. */
export async function state(page) {
  return {
    time: await page.locator('[data-testid="time"]').getAttribute("data-us"),
    events: await text(page, "event-count"),
    conntrack: await page.locator('[data-testid="ct-row"]').allInnerTexts(),
    ctStats: await text(page, "ct-stats"),
  };
}

export async function waitForEnd(page) {
  await page.waitForFunction(() => !document.querySelector('[data-testid="end-time"]')?.textContent?.startsWith("≥"), null, {
    timeout: 60_000,
  });
}

export async function seekTo(page, us) {
  // The slider reaches as far as the simulation has been explored.
  await page.waitForFunction((v) => Number(document.querySelector('[data-testid="scrub"]')?.max) >= v, us, { timeout: 120_000 });
  await page.$eval(
    '[data-testid="scrub"]',
    (el, v) => {
      el.value = String(v);
      el.dispatchEvent(new Event("input", { bubbles: true }));
    },
    us,
  );
  await page.waitForFunction((v) => document.querySelector('[data-testid="time"]')?.getAttribute("data-us") === String(v), us);
}

