// End-to-end tests of the playground: the built page (web/dist) served locally, driven in
// Debian's headless Chromium through playwright-core. Run by `cargo xtask e2e`
// (or `npm run e2e` in web/ after `cargo xtask playground --no-serve`).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { open, shot, state, text, waitForEnd, seekTo, webDir } from "./harness.mjs";

describe("playground", () => {
  test("seed lesson: the SYN's destination 10.96.0.10:80 is rewritten to 10.244.1.20:80, with its conntrack row", async () => {
    const { page, close } = await open();
    await page.selectOption('[data-testid="lesson-select"]', "dnat");
    await page.waitForFunction(() => document.body.dataset.lessonStep === "dnat:0");
    // Step 1: Pod A's SYN to the ClusterIP.
    assert.match(await text(page, "selected-packet"), /10\.244\.0\.5:\d+ → 10\.96\.0\.10:80/);
    await shot(page, "lesson-dnat-1-syn");
    // Step 2: node-a's PREROUTING DNAT.
    await page.click('[data-testid="lesson-next"]');
    await page.waitForFunction(() => document.body.dataset.lessonStep === "dnat:1");
    const rewrite = page.locator('[data-testid="hop-rewrite"]').first();
    assert.match(await rewrite.locator(".before").innerText(), /10\.244\.0\.5:\d+ → 10\.96\.0\.10:80/);
    const afterText = await rewrite.locator(".after").innerText();
    assert.match(afterText, /→ 10\.244\.1\.20:80/);
    // The changed field is marked: the destination IP, not the source.
    assert.deepEqual(await rewrite.locator(".after mark").allInnerTexts(), ["10.244.1.20"]);
    // node-a's conntrack table, this connection's row highlighted.
    const row = page.locator('[data-testid="ct-row"].selected');
    assert.equal(await row.count(), 1, "one highlighted conntrack row");
    const ct = await row.innerText();
    assert.match(ct, /src=10\.244\.0\.5 dst=10\.96\.0\.10 sport=\d+ dport=80 .*src=10\.244\.1\.20 dst=10\.244\.0\.5 sport=80/);
    // The kube-proxy rule lines the packet matched are lit, the DNAT among them.
    const lit = await page.locator('[data-testid="rule-lit"]').allInnerTexts();
    assert.ok(lit.some((l) => l.includes("-j DNAT --to-destination 10.244.1.20:80")), `lit rules: ${lit.join("\n")}`);
    assert.ok(lit.some((l) => l.includes("-A KUBE-SERVICES -d 10.96.0.10/32")), "KUBE-SERVICES jump lit");
    await shot(page, "lesson-dnat-2-prerouting");
    // Step 3: the backend sees Pod A's address.
    await page.click('[data-testid="lesson-next"]');
    await page.waitForFunction(() => document.body.dataset.lessonStep === "dnat:2");
    const hops = await page.locator('[data-testid="hop"]').allInnerTexts();
    assert.ok(hops.some((h) => /received backend\/eth0/.test(h) && h.includes("10.244.1.20:80")), hops.join("\n"));
    await shot(page, "lesson-dnat-3-backend");
    await close();
  });

  test("step back restores the earlier state (deterministic replay)", async () => {
    const { page, close } = await open("?example=seed");
    const states = [await state(page)];
    for (let i = 0; i < 12; i++) {
      await page.click('[data-testid="step"]');
      states.push(await state(page));
    }
    // Time moved forward and things happened.
    assert.ok(Number(states[12].time) > 0);
    assert.ok(Number(states[12].events) > Number(states[1].events));
    assert.ok(states[12].conntrack.length > 0, "a conntrack entry exists after 12 steps");
    for (let i = 11; i >= 6; i--) {
      await page.click('[data-testid="step-back"]');
      assert.deepEqual(await state(page), states[i], `after stepping back to step ${i}`);
    }
    assert.match(await text(page, "replay-info"), /last replay \d+ ms/);
    // Scrubbing back to 0 is the initial state again.
    await seekTo(page, 0);
    assert.deepEqual(await state(page), states[0]);
    await close();
  });

  test("a long replay back in time goes on over frames and ends in the same state", async () => {
    // 3000 connections over three endpoints: about 228,000 trace events in 34 ms.
    const { page, close } = await open("?example=three-endpoints");
    await seekTo(page, 12_000);
    const early = await state(page);
    await seekTo(page, 30_000);
    assert.ok(Number(await text(page, "event-count")) > Number(early.events));
    // Back to 12 ms: a replay from 0 that takes longer than one frame's budget.
    await page.$eval('[data-testid="scrub"]', (el) => {
      el.value = "12000";
      el.dispatchEvent(new Event("input", { bubbles: true }));
    });
    const frames = await page.evaluate(
      () =>
        new Promise((ok) => {
          let n = 0;
          let sawReplay = false;
          const tick = () => {
            n++;
            if (document.body.dataset.replaying === "true") sawReplay = true;
            const t = document.querySelector('[data-testid="time"]')?.getAttribute("data-us");
            if (t === "12000" && document.body.dataset.replaying !== "true") ok({ n, sawReplay });
            else requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        }),
    );
    console.log(`# replay to 12 ms of three-endpoints: ${frames.n} frames drawn meanwhile (async: ${frames.sawReplay})`);
    assert.deepEqual(await state(page), early);
    assert.match(await text(page, "replay-info"), /last replay \d+ ms/);
    const mib = await page.evaluate(() => window.podnetMemory() / 2 ** 20);
    console.log(`# three-endpoints: ${await text(page, "replay-info")}, wasm memory ${mib.toFixed(0)} MiB`);
    await close();
  });

  test("a seek back from a parked checkpoint lands in the same state as a re-run from time 0", async () => {
    // `?checkpoints=N` parks N Sims along the run even when it is short (0: none).
    const land = async (checkpoints, at) => {
      const { page, close } = await open(`?example=three-endpoints&checkpoints=${checkpoints}`);
      await waitForEnd(page);
      await page.waitForFunction(() => /^(\d+)\/\1$/.test(document.body.dataset.checkpoints ?? ""), null, { timeout: 120_000 });
      const slots = (await page.evaluate(() => document.body.dataset.checkpointTimes)).split(" ").filter(Boolean).map(Number);
      const target = at ?? (slots[1] ?? 0) + 700;
      const full = () => page.waitForFunction(() => /^(\d+)\/\1$/.test(document.body.dataset.checkpoints ?? ""), null, { timeout: 120_000 });
      await seekTo(page, target + 5_000);
      await full(); // a seek may use up checkpoints: they are parked again in the background
      await seekTo(page, target);
      const from = Number(await page.locator('[data-testid="replay-info"]').getAttribute("data-from"));
      const got = { ...(await state(page)), report: await text(page, "report") };
      await close();
      return { slots, target, from, got };
    };
    const parked = await land(3);
    assert.ok(parked.slots.length >= 2, `checkpoints at ${parked.slots}`);
    assert.ok(parked.from > 0 && parked.from <= parked.target, `re-ran from ${parked.from} µs, not from a checkpoint`);
    const fromZero = await land(0, parked.target);
    assert.deepEqual(fromZero.slots, []);
    assert.equal(fromZero.from, 0);
    console.log(`# checkpoints at ${parked.slots.join(", ")} µs: ${parked.target} µs reached from ${parked.from} µs and from 0`);
    assert.deepEqual(parked.got, fromZero.got);
  });

  test("nftables mode: clicking the DNAT hook event lights the nft rules it matched", async () => {
    const { page, close } = await open("?example=seed");
    const yaml = await page.inputValue('[data-testid="yaml-editor"]');
    assert.ok(yaml.includes("proxy: iptables"));
    await page.fill('[data-testid="yaml-editor"]', yaml.replace("proxy: iptables", "proxy: nftables"));
    await page.click('[data-testid="load"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="status"]')?.textContent?.includes("(nftables)"));
    // Step until node-a's PREROUTING rewrite is in the event list, then click it.
    const row = page.locator('[data-testid="event"]', { hasText: "PREROUTING (rewritten)" });
    for (let i = 0; i < 30 && (await row.count()) === 0; i++) await page.click('[data-testid="step"]');
    await row.first().click();
    const lit = await page.locator('[data-testid="rule-lit"]').allInnerTexts();
    assert.ok(lit.some((l) => l.trim() === "meta l4proto tcp dnat to 10.244.1.20:80"), `lit: ${lit.join("\n")}`);
    assert.ok(lit.some((l) => l.trim() === "jump services"), "the prerouting jump is lit");
    assert.match(await page.locator('[data-testid="hop-rewrite"] .after').first().innerText(), /10\.244\.1\.20:80/);
    await shot(page, "nftables-dnat");
    await close();
  });

  test("play runs the seed to its end: three connections ok", async () => {
    const { page, close } = await open("?example=seed");
    await waitForEnd(page);
    const end = await page.$eval('[data-testid="scrub"]', (el) => el.max);
    await page.selectOption('[data-testid="speed"]', "2000");
    await page.click('[data-testid="play"]');
    await page.waitForFunction((e) => document.querySelector('[data-testid="time"]')?.getAttribute("data-us") === e, end, {
      timeout: 60_000,
    });
    assert.match(await text(page, "play"), /play/, "stopped at the end");
    assert.match(await text(page, "report"), /flow web: 3 connections: 3 ok/);
    await shot(page, "seed-played-to-end");
    await close();
  });

  test("clicking a moving packet selects it and shows its hops", async () => {
    const { page, close } = await open("?example=seed");
    // Step to a moment with a TCP segment on a wire.
    let pos = null;
    for (let i = 0; i < 40 && !pos; i++) {
      await page.click('[data-testid="step"]');
      // Where the page drew its first packet (window.podnetPacket is the page's own lookup).
      pos = await page.evaluate(() => window.podnetPacket(0));
    }
    assert.ok(pos, "a packet in flight");
    await page.mouse.click(pos.x, pos.y);
    await page.waitForFunction((i) => document.body.dataset.selected === String(i), pos.index);
    assert.ok((await page.locator('[data-testid="hop"]').count()) >= 2, "the packet's hops are listed");
    assert.equal(await page.locator(`[data-testid="hop"][data-index="${pos.index}"]`).count(), 1, "the clicked frame is one of them");
    await shot(page, "clicked-packet");
    await close();
  });

  test("a YAML error is shown inline at its line", async () => {
    const { page, close } = await open("?example=seed");
    const yaml = await page.inputValue('[data-testid="yaml-editor"]');
    const lines = yaml.split("\n");
    const bad = lines.findIndex((l) => l.includes(" port: 80,"));
    assert.ok(bad >= 0);
    lines[bad] = lines[bad].replace(" port: 80,", " port: eighty,");
    await page.fill('[data-testid="yaml-editor"]', lines.join("\n"));
    await page.click('[data-testid="load"]');
    const inline = page.locator('[data-testid="yaml-error-inline"]');
    await inline.first().waitFor();
    assert.equal(await inline.first().getAttribute("data-line"), String(bad + 1));
    assert.match(await text(page, "yaml-error"), new RegExp(`:${bad + 1}:\\d+: spec\\.ports\\[0\\]\\.port`));
    assert.match(await page.locator(".gutter div.error").first().innerText(), new RegExp(`^${bad + 1}$`));
    await shot(page, "yaml-error");
    // Fixing it clears the error and loads.
    lines[bad] = lines[bad].replace(" port: eighty,", " port: 80,");
    await page.fill('[data-testid="yaml-editor"]', lines.join("\n"));
    await page.click('[data-testid="load"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="yaml-error-inline"]').length === 0);
    await close();
  });

  test("tcpdump filter, and the pcap download starts with the pcap magic", async () => {
    const { page, close } = await open("?example=seed");
    await waitForEnd(page);
    const end = Number((await page.$eval('[data-testid="scrub"]', (el) => el.max)) ?? 0);
    await seekTo(page, end);
    const all = Number((await text(page, "tcpdump-count")).split(" ")[0]);
    assert.ok(all > 20, `${all} packets on any`);
    await page.fill('[data-testid="tcpdump-filter"]', "host 10.96.0.10 and port 80");
    await page.waitForFunction((n) => {
      const c = document.querySelector('[data-testid="tcpdump-count"]')?.textContent ?? "";
      return c !== "" && Number(c.split(" ")[0]) < n;
    }, all);
    const lines = (await text(page, "tcpdump-output")).split("\n").filter(Boolean);
    assert.ok(lines.length > 0);
    for (const l of lines) assert.match(l, /10\.96\.0\.10\.80/, l);
    await shot(page, "tcpdump-filter");
    await page.fill('[data-testid="tcpdump-filter"]', "host and and");
    await page.locator('[data-testid="tcpdump-error"]').waitFor({ state: "visible" });
    assert.ok((await text(page, "tcpdump-error")).length > 0);
    await page.fill('[data-testid="tcpdump-filter"]', "");
    // pcap of every interface (Linux cooked capture) up to the time shown.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="pcap-download"]')]);
    const bytes = readFileSync(await download.path());
    assert.ok(bytes.length > 24, `pcap is ${bytes.length} bytes`);
    const magic = bytes.readUInt32LE(0);
    assert.ok([0xa1b2c3d4, 0xa1b23c4d].includes(magic), `magic ${magic.toString(16)}`);
    // One interface too.
    await page.selectOption('[data-testid="tcpdump-iface"]', "node-a/eth0");
    const [d2] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="pcap-download"]')]);
    assert.equal(d2.suggestedFilename(), "node-a_eth0.pcap");
    const b2 = readFileSync(await d2.path());
    assert.ok([0xa1b2c3d4, 0xa1b23c4d].includes(b2.readUInt32LE(0)));
    await close();
  });

  test("every lesson step finds its packet (or says the lesson is not available)", async () => {
    const { page, close } = await open();
    const lessons = await page.$$eval('[data-testid="lesson-select"] option', (os) => os.map((o) => o.value).filter(Boolean));
    assert.ok(lessons.length >= 12, `${lessons.length} lessons`);
    for (const id of lessons) {
      await page.selectOption('[data-testid="lesson-select"]', id);
      if ((await page.locator('[data-testid="lesson-unavailable"]').count()) > 0) {
        console.log(`# lesson ${id}: ${await text(page, "lesson-unavailable")}`);
        await shot(page, `lesson-${id}-unavailable`);
        continue;
      }
      const steps = Number((await text(page, "lesson-progress")).split("/")[1]);
      for (let s = 0; s < steps; s++) {
        if (s > 0) await page.click('[data-testid="lesson-next"]');
        await page.waitForFunction((k) => document.body.dataset.lessonStep === k, `${id}:${s}`);
        assert.doesNotMatch(await text(page, "lesson-look"), /did not happen/, `${id} step ${s + 1}`);
        await shot(page, `lesson-${id}-${s + 1}`);
      }
      if (id === "egress") {
        const after = await page.locator('[data-testid="hop-rewrite"] .after').allInnerTexts();
        assert.ok(after.length > 0);
        // The external host is drawn behind the edge router, which has its wire to the underlay.
        assert.equal(await page.locator("g.node.edge").count(), 1, "the edge router is drawn");
        assert.ok((await page.locator("g.node.edge g.pod.external").count()) >= 1, "an external host is drawn");
      }
      if (id === "full") {
        assert.match(await text(page, "drop-reason"), /table full/);
      }
      if (id === "policy") {
        assert.match(await text(page, "policy-panel"), /NetworkPolicy: .*no policy allows it/);
        // At the end of the run the report has the intruder's connection denied.
        await waitForEnd(page);
        await seekTo(page, Number(await page.$eval('[data-testid="scrub"]', (el) => el.max)));
        assert.match(await text(page, "policy-denied"), /flow intruder #0 10\.244\.\d+\.\d+:\d+ → 10\.96\.0\.50:80: denied/);
        await shot(page, "policy-denied");
      }
    }
    await close();
  });

  test("frames per second with 200 packets in flight", async () => {
    const { page, close } = await open();
    const yaml = `apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {name: busy}
spec:
  link: {latency: 1ms, bandwidth: 100Mbit}
  nodes:
    - {name: node-a, ip: 192.168.1.100}
    - {name: node-b, ip: 192.168.1.101}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-a, containers: [{name: c, image: curlimages/curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {nodeName: node-b, containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata: {name: burst}
spec: {from: client, to: "web:80", count: 220, concurrency: 220, interval: 5us, request: "GET / HTTP/1.1"}
`;
    await page.fill('[data-testid="yaml-editor"]', yaml);
    await page.click('[data-testid="load"]');
    await page.waitForFunction(() => document.body.dataset.loaded === "busy");
    // Find a moment with at least 200 frames on the wires.
    let best = { t: 0, n: 0 };
    for (let t = 200; t <= 12_000 && best.n < 200; t += 350) {
      await seekTo(page, t);
      const n = Number(await text(page, "in-flight"));
      if (n > best.n) best = { t, n };
    }
    await seekTo(page, best.t);
    await page.selectOption('[data-testid="speed"]', "20");
    const before = Number(await page.locator('[data-testid="time"]').getAttribute("data-us"));
    await page.click('[data-testid="play"]');
    const measured = await page.evaluate(
      () =>
        new Promise((ok) => {
          let frames = 0;
          let inflight = 0;
          const t0 = performance.now();
          const tick = () => {
            frames++;
            inflight += Number(document.querySelector('[data-testid="in-flight"]')?.textContent ?? 0);
            if (performance.now() - t0 < 4000) requestAnimationFrame(tick);
            else ok({ fps: (frames * 1000) / (performance.now() - t0), inflight: inflight / frames });
          };
          requestAnimationFrame(tick);
        }),
    );
    await shot(page, "fps-200-in-flight");
    await page.click('[data-testid="play"]');
    // Playing moved the virtual time on (20 µs per second here).
    const playedTo = Number(await page.locator('[data-testid="time"]').getAttribute("data-us"));
    assert.ok(playedTo > before, `time ${before} -> ${playedTo} µs while playing`);
    console.log(
      `# fps: ${measured.fps.toFixed(1)} frames/s over 4 s with ${measured.inflight.toFixed(0)} packets in flight on average (start: ${best.n} at ${best.t} µs)`,
    );
    assert.ok(best.n >= 200, `only ${best.n} packets in flight at best`);
    await close();
  });
});

/** The wasm module's memory (WebAssembly.Memory of the package), MiB. */
const wasmMiB = (page) => page.evaluate(() => window.podnetMemory() / 2 ** 20);

/** Runs `act` in the page, then waits for the time shown to be `want` (or to change, when
 * `want` is null) with no re-run going on; the wall milliseconds in between. */
async function landing(page, act, want) {
  return page.evaluate(
    ({ act, want }) =>
      new Promise((ok, fail) => {
        const time = () => document.querySelector('[data-testid="time"]')?.getAttribute("data-us");
        const before = time();
        const t0 = performance.now();
        if (act.scrub !== undefined) {
          const el = document.querySelector('[data-testid="scrub"]');
          el.value = String(act.scrub);
          el.dispatchEvent(new Event("input", { bubbles: true }));
        } else document.querySelector(`[data-testid="${act.click}"]`).click();
        const tick = () => {
          const t = time();
          const landed = want === null ? t !== before : t === String(want);
          if (landed && document.body.dataset.replaying !== "true") ok({ ms: performance.now() - t0, t: Number(t) });
          else if (document.getElementById("status")?.classList.contains("error")) {
            fail(new Error(`the page failed: ${document.getElementById("status").textContent}`));
          } else if (performance.now() - t0 > 120_000) fail(new Error(`not at ${want ?? "a new time"} after 120 s: ${t}`));
          else requestAnimationFrame(tick);
        };
        tick();
      }),
    { act, want },
  );
}

describe("scale", () => {
  // three-endpoints with its Traffic scaled from 3,000 to 30,000 connections.
  const yaml = readFileSync(resolve(webDir, "..", "examples", "three-endpoints.yaml"), "utf8").replace(/count: 3000\b/, "count: 30000");

  test(
    "30,000 connections: play, step back and scrub; wasm memory stays within 512 MiB",
    {
      timeout: 600_000,
    },
    async () => {
      assert.match(yaml, /count: 30000/);
      // PODNET_E2E_CHECKPOINTS=N measures with N checkpoints instead of the page's choice.
      const asked = process.env.PODNET_E2E_CHECKPOINTS;
      const { page, errors, close } = await open(`?example=seed${asked ? `&checkpoints=${asked}` : ""}`);
      const mib = async () => (await page.evaluate(() => window.podnetMemory() / 2 ** 20)).toFixed(0);
      const parkedAll = () =>
        page.waitForFunction(() => /^(\d+)\/\1$/.test(document.body.dataset.checkpoints ?? ""), null, { timeout: 300_000 });
      const step = async (what, act, want, rested = false) => {
        if (errors.length > 0) throw new Error(`the page failed before ${what}: ${errors[0]}`);
        if (rested) {
          // As after a pause: the checkpoints used up by the last moves are parked again.
          const w0 = Date.now();
          await parkedAll();
          what += ` (rested ${Date.now() - w0} ms)`;
        }
        const r = await landing(page, act, want);
        const from = await page.locator('[data-testid="replay-info"]').getAttribute("data-from");
        const ck = await page.evaluate(() => document.body.dataset.checkpoints);
        console.log(`# 30k: ${what} -> ${r.t} µs in ${r.ms.toFixed(0)} ms (from ${from} µs; checkpoints ${ck}); wasm memory ${await mib()} MiB`);
      };
      await page.fill('[data-testid="yaml-editor"]', yaml);
      const t0 = Date.now();
      await page.click('[data-testid="load"]');
      await page.waitForFunction(() => document.body.dataset.loaded === "three-endpoints");
      await waitForEnd(page);
      console.log(`# 30k: end ${await text(page, "end-time")} known after ${Date.now() - t0} ms; wasm memory ${await mib()} MiB`);
      // The page parks Sims along the run in the background (checkpoints): wait for them all.
      const t1 = Date.now();
      await parkedAll();
      const parked = await page.evaluate(() => document.body.dataset.checkpoints);
      const at = await page.evaluate(() => document.body.dataset.checkpointTimes);
      console.log(`# 30k: checkpoints ${parked} at ${at} µs parked after ${Date.now() - t1} ms more; wasm memory ${await mib()} MiB`);
      // Play at 100 ms of virtual time per second for two seconds.
      await page.selectOption('[data-testid="speed"]', "100000");
      await page.click('[data-testid="play"]');
      await page.waitForTimeout(2000);
      await page.click('[data-testid="play"]');
      await page.waitForFunction(() => document.body.dataset.replaying !== "true", null, { timeout: 120_000 });
      const played = await page.locator('[data-testid="time"]').getAttribute("data-us");
      console.log(`# 30k: played to ${played} µs; wasm memory ${await mib()} MiB`);
      for (let i = 0; i < 3; i++) await step("step back", { click: "step-back" }, null);
      // The run ends at 60.32 s: the table fills at 179 ms, and the SYNs it drops hold the
      // client's 50 slots until their 10 s timeout (retransmitted at 1, 3 and 7 s), 50 at a
      // time, until the first connections' ports leave TIME-WAIT at 60 s; quiet from 7.2 s to
      // 10 s (and in every such stretch after).
      const quiet = 9_000_000;
      const scrubs = [5_000, 40_000, 150_000, 2_000_000, 30_000_000, 1_000, 60_300_000, quiet];
      // Back to back, then each after the checkpoints are parked again.
      for (const us of scrubs) await step(`scrub to ${us} µs`, { scrub: us }, us);
      await seekTo(page, Math.floor(Number(played)));
      // Each step back lands on an earlier event, not at 0 (also where the time shown is in a
      // quiet stretch, its window holding no event before it).
      let shown = Number(await page.locator('[data-testid="time"]').getAttribute("data-us"));
      for (let i = 0; i < 3; i++) {
        await step("step back", { click: "step-back" }, null, true);
        const now = Number(await page.locator('[data-testid="time"]').getAttribute("data-us"));
        assert.ok(now > 0 && now < shown, `a step back from ${shown} µs landed at ${now} µs`);
        shown = now;
      }
      for (const us of scrubs) await step(`scrub to ${us} µs`, { scrub: us }, us, true);
      // The last scrub left the time shown in the quiet stretch (9 s), where the window holds
      // no event before it: one step back lands on the last frame delivered before 9 s (as
      // many frames delivered there as at 9 s, one more than a microsecond earlier).
      const framesAt = async () => Number(await text(page, "event-count"));
      const atQuiet = await framesAt();
      await step("step back", { click: "step-back" }, null);
      const back = Number(await page.locator('[data-testid="time"]').getAttribute("data-us"));
      assert.ok(back > 0 && back < quiet, `a step back from ${quiet} µs landed at ${back} µs`);
      assert.equal(await framesAt(), atQuiet, `frames delivered between ${back} µs and ${quiet} µs`);
      await seekTo(page, back - 1);
      await page.waitForFunction(() => document.body.dataset.replaying !== "true");
      assert.ok((await framesAt()) < atQuiet, `no frame delivered at ${back} µs, where the step back from ${quiet} µs landed`);
      await shot(page, "scale-30k");
      const peak = Number(await mib());
      assert.ok(peak <= 512, `wasm memory ${peak} MiB > 512 MiB`);
      await close();
    },
  );
});
