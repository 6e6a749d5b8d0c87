// What if: the network-policy example loaded, its allow-frontend rule taken out in the
// editor, and the What if button (reached with the keyboard) lists the frontend flow's
// connections going from ok to denied, allow-frontend named as the rule that let them in
// before; an edit that changes nothing lists no change; bad YAML shows the error with its
// line. axe-core checks the page with the result shown.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { open, seekTo, shot, text, waitForEnd } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");
const EDITOR = '[data-testid="yaml-editor"]';
const RULE = "  ingress:\n    - from: [{podSelector: {matchLabels: {role: frontend}}}]\n      ports: [{port: http}]\n";

/** Press What if (already focused, or clicked) and wait until it has run. */
async function whatIf(page, { keyboard = false } = {}) {
  if (keyboard) await page.keyboard.press("Enter");
  else await page.click('[data-testid="whatif"]');
  // It runs in a worker; the button is aria-busy meanwhile.
  await page.waitForSelector('[data-testid="whatif"]:not([aria-busy])', { timeout: 60_000 });
  await page.waitForSelector('[data-testid="whatif-panel"]:not([hidden])');
}

/** The changed connections (or probes) the What if panel lists. */
async function changes(page, testid = "whatif-conn") {
  return page.$$eval(`[data-testid="${testid}"]`, (items) =>
    items.map((li) => {
      const t = (id) => li.querySelector(`[data-testid="${id}"]`)?.textContent ?? "";
      return { what: t("whatif-flow"), fromTo: t("whatif-endpoints"), outcome: t("whatif-outcome"), before: t("whatif-why-before"), after: t("whatif-why-after") };
    }),
  );
}

test("What if: the frontend rule taken out denies the frontend flow; a comment changes nothing; bad YAML shows its line", { timeout: 300_000 }, async () => {
  const { page, close } = await open("?example=network-policy", { width: 1280, height: 800 });
  await page.waitForFunction(() => document.body.dataset.loaded === "network-policy");
  assert.equal(await page.isHidden('[data-testid="whatif-panel"]'), true, "no result before the button is pressed");
  const original = await page.inputValue(EDITOR);
  assert.ok(original.includes(RULE), "the example's allow-frontend ingress rule");

  // The rule taken out; What if reached from Load with Tab and pressed with Enter.
  await page.fill(EDITOR, original.replace(RULE, "  ingress: []\n"));
  await page.focus('[data-testid="load"]');
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), "whatif", "Tab from Load reaches What if");
  assert.equal(await page.getByRole("button", { name: "What if", exact: true }).count(), 1, "a button named What if");
  await whatIf(page, { keyboard: true });
  const conns = await changes(page);
  assert.deepEqual(
    conns.map((c) => [c.what, c.outcome]),
    [
      ["frontend #0", "ok → denied"],
      ["frontend #1", "ok → denied"],
    ],
    "both frontend connections change from ok to denied, the intruder's does not",
  );
  for (const c of conns) {
    assert.match(c.fromTo, /^\d+\.\d+\.\d+\.\d+:\d+ → 10\.96\.0\.50:80/);
    assert.match(c.before, /default\/allow-frontend/, "the rule that let it in before");
    assert.match(c.after, /no policy allows it/);
  }
  assert.match(await text(page, "whatif-summary"), /2 of 3 connections changed/);
  const probes = await changes(page, "whatif-probe");
  const cell = probes.find((p) => p.fromTo === "default/pod-a → default/backend");
  assert.ok(cell, JSON.stringify(probes));
  assert.equal(cell.outcome, "allowed → denied");
  assert.match(cell.before, /default\/allow-frontend/);
  // The same connections are marked in the report, once the time shown is past their start.
  await waitForEnd(page);
  await seekTo(page, Number(await page.getAttribute('[data-testid="scrub"]', "max")));
  const marked = await page.locator('[data-testid="report-whatif"]').allInnerTexts();
  assert.equal(marked.length, 2, marked.join("\n"));
  assert.match(marked[0], /^\s+#0\s/);
  assert.match(marked[1], /^\s+#1\s/);
  assert.ok((await text(page, "report")).includes("flow frontend"));

  // axe-core with the result shown.
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.impact} ${v.id} (${v.help}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  });
  assert.deepEqual(violations, [], "no serious or critical accessibility violations");
  await shot(page, "whatif");

  // A comment only: nothing changes, and the marks go.
  await page.fill(EDITOR, `# only a comment\n${original}`);
  await whatIf(page);
  assert.equal(await text(page, "whatif-none"), "no connection changes");
  assert.equal(await page.locator('[data-testid="whatif-conn"]').count(), 0);
  assert.equal(await page.locator('[data-testid="whatif-probe"]').count(), 0);
  assert.match(await text(page, "whatif-summary"), /0 of 3 connections changed, 0 of \d+ probes changed/);
  assert.equal(await page.locator('[data-testid="report-whatif"]').count(), 0);

  // Bad YAML: the error with its line, as the CLI prints it.
  const good = 'spec: {from: pod-a, to: "web:80", count: 2, expect: {outcome: ok}}';
  const line = original.split("\n").indexOf(good) + 1;
  assert.ok(line > 0);
  await page.fill(EDITOR, original.replace(good, good.replace("count: 2", "count: two")));
  await whatIf(page);
  const err = await text(page, "whatif-error");
  assert.match(err, new RegExp(`^scenario\\.yaml:${line}:\\d+: .*count`), err);
  assert.equal(await page.locator('[data-testid="whatif-conn"]').count(), 0);

  // Loading another scenario puts the result away: it compared the old one.
  await page.fill(EDITOR, original);
  await page.click('[data-testid="load"]');
  await page.waitForSelector('[data-testid="whatif-panel"]', { state: "hidden" });
  await close();
});

test("What if runs in a worker: the page keeps drawing while a long example runs twice", { timeout: 300_000 }, async () => {
  const { page, close } = await open("?example=upload", { width: 1280, height: 800 });
  await page.waitForFunction(() => document.body.dataset.loaded === "upload");
  await page.click('[data-testid="whatif"]');
  assert.equal(await page.getAttribute('[data-testid="whatif"]', "aria-busy"), "true");
  // upload's two worlds take seconds; meanwhile animation frames keep coming.
  const frameMs = await page.evaluate(() => {
    const t0 = performance.now();
    return new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(performance.now() - t0))));
  });
  assert.ok(frameMs < 1000, `two frames took ${frameMs} ms`);
  assert.equal(await page.getAttribute('[data-testid="whatif"]', "aria-busy"), "true", "still running after the frames");
  await page.waitForSelector('[data-testid="whatif"]:not([aria-busy])', { timeout: 120_000 });
  assert.equal(await text(page, "whatif-none"), "no connection changes");
  await close();
});
