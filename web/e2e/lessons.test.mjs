// Every lesson, every step, on a laptop's screen (1280x800 and 1366x768): the step's focus
// panel is in the viewport, its packet is selected and shown, the page never scrolls
// sideways, and the closing question accepts the answer read off the panels and rejects a
// wrong one. Screenshots of each step land in target/e2e-artifacts/; one of them,
// playground.png there, is the README's picture (copied to book/src/images/playground.png
// when PODNET_README_SCREENSHOT=1). axe-core checks the page for serious and critical
// accessibility violations.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { copyFileSync, mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { artifacts, open, text, webDir } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 1366, height: 768 },
];
/** The README's screenshot: this lesson at 1280x800, its question answered. */
const README_SHOT = { lesson: "snat", file: resolve(webDir, "..", "book", "src", "images", "playground.png") };

/** The cells of the selected packet's current hop: [time, kind and place, header]. */
async function currentHop(page) {
  const row = page.locator('[data-testid="hop"].current');
  assert.equal(await row.count(), 1, "one current hop");
  return row.locator("td").allInnerTexts();
}

const IP = String.raw`\d+\.\d+\.\d+\.\d+`;
/** "a:p → b:q" (after a rewrite: the header after it) as {src, sport, dst, dport}. */
function header(s) {
  const m = new RegExp(`(${IP})(?::(\\d+))? → (${IP})(?::(\\d+))?`).exec(s);
  assert.ok(m, `a header in ${JSON.stringify(s)}`);
  return { src: m[1], sport: m[2], dst: m[3], dport: m[4] };
}
async function afterRewrite(page) {
  return header(await page.locator('[data-testid="hop"].current [data-testid="hop-rewrite"] .after').innerText());
}

/**
 * Each lesson's answer, read off what the page shows (the learner's way), not from the
 * page's own computation: the test fails if the page computed something else.
 */
const ANSWERS = {
  tcpdump: async (page) => {
    const lines = (await text(page, "tcpdump-output")).split("\n").filter(Boolean);
    return new RegExp(` > (${IP})\\.\\d+: `).exec(lines.at(-1))[1];
  },
  dnat: async (page) => header((await currentHop(page))[2]).dst,
  snat: async (page) => {
    const port = (await afterRewrite(page)).sport;
    // The same port is in node-a's conntrack row for the connection, as its reply's dport.
    assert.match(await page.locator('[data-testid="ct-row"].selected').first().innerText(), new RegExp(`dst=192\\.168\\.1\\.100 sport=80 dport=${port}\\b`));
    return port;
  },
  ebpf: async (page) => {
    const a = await afterRewrite(page);
    return `${a.src}:${a.sport}`;
  },
  "pod-cidr": async (page) => {
    const sub = await page.locator('g.node:has(g.pod[data-pod="web-0"]) .node-sub').textContent();
    return /pods (\S+)/.exec(sub)[1];
  },
  clusterip: async (page) => (await afterRewrite(page)).dst,
  cni: async (page) => header(await page.locator('[data-testid="hop"].current [data-testid="hop-outer"]').innerText()).dport,
  endpoints: async (page) => (await afterRewrite(page)).dst,
  egress: async (page) => header((await currentHop(page))[2]).sport,
  policy: async (page) => /^hook (\S+) /.exec((await currentHop(page))[1])[1],
  conntrack: async (page) => {
    const h = header((await currentHop(page))[2]);
    return `${h.src}:${h.sport}`;
  },
  full: async (page) => /drop=(\d+)/.exec(await text(page, "ct-stats"))[1],
  nodeport: async (page) => header((await currentHop(page))[2]).src,
  races: async (page) => /^(\d+)\./.exec((await currentHop(page))[0])[1],
  cilium: async (page) => {
    // The pods show their identities; the backend's capture shows the proxy's port.
    assert.match(await page.locator('g.pod[data-pod="client"] [data-testid="pod-identity"]').textContent(), /identity 256/);
    const first = (await text(page, "tcpdump-output")).split("\n").find((l) => l.includes("> 10.244.1.20.80:"));
    return /10\.244\.0\.5\.(\d+) > /.exec(first)[1];
  },
};

/** Where an element is against the viewport. */
const box = (page, selector) =>
  page.$eval(selector, (el) => {
    const r = el.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height, vw: innerWidth, vh: innerHeight };
  });

async function noHorizontalScroll(page, where) {
  const { sw, iw } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, iw: innerWidth }));
  assert.ok(sw <= iw, `${where}: the page is ${sw}px wide in a ${iw}px viewport`);
}

/** axe-core's serious and critical violations on the page as it is. */
async function axeViolations(page) {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  return found.filter((v) => v.impact === "serious" || v.impact === "critical");
}

describe("lessons on a laptop screen", () => {
  for (const vp of VIEWPORTS) {
    const size = `${vp.width}x${vp.height}`;
    test(`at ${size}: every step's focus panel in view, its packet selected, each question checked`, { timeout: 600_000 }, async () => {
      const { page, close } = await open("", vp);
      await noHorizontalScroll(page, "the page as it opens");
      const lessons = await page.$$eval('[data-testid="lesson-select"] option', (os) => os.map((o) => o.value).filter(Boolean));
      assert.deepEqual(lessons.slice().sort(), Object.keys(ANSWERS).sort(), "a question check for every lesson");
      for (const id of lessons) {
        await page.selectOption('[data-testid="lesson-select"]', id);
        const steps = Number((await text(page, "lesson-progress")).split("/")[1]);
        assert.ok(steps >= 1, `${id} has steps`);
        for (let s = 0; s < steps; s++) {
          const where = `${size} ${id} step ${s + 1}`;
          if (s > 0) await page.click('[data-testid="lesson-next"]');
          await page.waitForFunction((k) => document.body.dataset.lessonStep === k, `${id}:${s}`, { timeout: 60_000 });
          assert.doesNotMatch(await text(page, "lesson-look"), /did not happen|no longer/, where);
          // The focus panel: outlined, unfolded, and in the viewport (its top and a good part of it).
          const f = await box(page, ".panel.focus");
          assert.ok(f.top >= 0 && f.left >= 0 && f.right <= f.vw, `${where}: focus panel at ${JSON.stringify(f)}`);
          assert.ok(f.top + Math.min(f.height, 160) <= f.vh, `${where}: focus panel below the fold: ${JSON.stringify(f)}`);
          assert.equal(await page.locator(".panel.focus.collapsed").count(), 0, `${where}: focus panel unfolded`);
          // The step's packet is selected and the packet panel shows it, its hop marked.
          assert.ok(Number(await page.evaluate(() => document.body.dataset.selected)) >= 0, `${where}: a packet selected`);
          assert.ok(await page.locator('[data-testid="selected-packet"]').isVisible(), `${where}: the packet panel shows it`);
          await currentHop(page);
          const hop = await box(page, '[data-testid="hop"].current');
          const body = await box(page, "#packet-body");
          assert.ok(hop.top >= Math.max(0, body.top) - 1 && hop.top + 12 <= Math.min(hop.vh, body.bottom), `${where}: the selected hop is in view: ${JSON.stringify({ hop, body })}`);
          await noHorizontalScroll(page, where);
          await page.screenshot({ path: join(artifacts, `lesson-${size}-${id}-${s + 1}.png`) });
        }
        // The question: visible under the last step, and checked against the run.
        assert.ok(await page.locator('[data-testid="lesson-question"]').isVisible(), `${id}: the question is asked`);
        const q = await box(page, '[data-testid="lesson-answer"]');
        assert.ok(q.top >= 0 && q.bottom <= q.vh, `${size} ${id}: the answer box is in view`);
        const right = await ANSWERS[id](page);
        assert.ok(right, `${id}: an answer read off the page`);
        await page.fill('[data-testid="lesson-answer"]', `${right}9`);
        await page.click('[data-testid="lesson-check"]');
        assert.equal(await page.locator('[data-testid="lesson-verdict"]').getAttribute("data-result"), "wrong", `${id}: ${right}9 rejected`);
        await page.fill('[data-testid="lesson-answer"]', ` ${right} `);
        await page.press('[data-testid="lesson-answer"]', "Enter");
        assert.equal(await page.locator('[data-testid="lesson-verdict"]').getAttribute("data-result"), "right", `${id}: ${right} accepted`);
        console.log(`# ${size} ${id}: "${await text(page, "lesson-ask")}" -> ${right}`);
        const answered = join(artifacts, `lesson-${size}-${id}-answered.png`);
        await page.screenshot({ path: answered });
        if (vp.width === 1280 && id === README_SHOT.lesson) {
          const shot = join(artifacts, "playground.png");
          copyFileSync(answered, shot);
          const kb = statSync(shot).size / 1024;
          assert.ok(kb < 250, `the README screenshot is ${kb.toFixed(0)} KB`);
          if (process.env.PODNET_README_SCREENSHOT === "1") {
            mkdirSync(resolve(README_SHOT.file, ".."), { recursive: true });
            copyFileSync(shot, README_SHOT.file);
          }
        }
      }
      await close();
    });
  }

  test("axe-core: no serious or critical violations, with and without a lesson", async () => {
    const { page, close } = await open("", VIEWPORTS[0]);
    const report = [];
    const check = async (what) => {
      for (const v of await axeViolations(page)) report.push(`${what}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(", ")}`);
    };
    await check("the page as it opens");
    for (const id of ["dnat", "cni", "full"]) {
      await page.selectOption('[data-testid="lesson-select"]', id);
      const steps = Number((await text(page, "lesson-progress")).split("/")[1]);
      for (let s = 1; s < steps; s++) await page.click('[data-testid="lesson-next"]');
      await page.waitForFunction((k) => document.body.dataset.lessonStep === k, `${id}:${steps - 1}`, { timeout: 60_000 });
      await check(`lesson ${id}, its question shown`);
    }
    assert.deepEqual(report, []);
    await close();
  });

  test("keyboard: the lesson is reachable and answerable without a mouse", async () => {
    const { page, close } = await open("", VIEWPORTS[0]);
    await page.focus('[data-testid="lesson-select"]');
    await page.selectOption('[data-testid="lesson-select"]', "egress");
    await page.waitForFunction(() => document.body.dataset.lessonStep === "egress:0");
    // Tab reaches the lesson's Next button, Enter presses it.
    let onNext = false;
    for (let i = 0; i < 40 && !onNext; i++) {
      await page.keyboard.press("Tab");
      onNext = await page.evaluate(() => document.activeElement?.getAttribute("data-testid") === "lesson-next");
    }
    assert.ok(onNext, "Tab reaches Next");
    // Space on a focused button presses it (it does not start the animation).
    await page.keyboard.press("Space");
    await page.waitForFunction(() => document.body.dataset.lessonStep === "egress:1");
    assert.match(await text(page, "play"), /play/, "still paused");
    // A fold button says whether its panel is open, and toggles it from the keyboard.
    const fold = page.locator('[data-testid="fold-report"]');
    assert.equal(await fold.getAttribute("aria-expanded"), "false", "the report is folded in this lesson");
    await fold.focus();
    await page.keyboard.press("Enter");
    assert.equal(await fold.getAttribute("aria-expanded"), "true");
    assert.ok(await page.locator('[data-testid="report"]').isVisible());
    // The focus ring is visible.
    const outline = await fold.evaluate((el) => getComputedStyle(el).outlineStyle);
    assert.notEqual(outline, "none", "focus is visible");
    await close();
  });
});
