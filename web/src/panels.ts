// The panels that follow the time shown: conntrack, rules, NetworkPolicy verdicts, events,
// tcpdump, the report and the counters; renderAll refreshes them, sparing costly ones while
// playing.
import { $, errorText, fmtTime, h } from "./dom";
import { drawPackets } from "./draw";
import { renderPacket } from "./packet-view";
import type { ConntrackHead, Flow, NodeReport } from "./podnet";
import { showProgress } from "./progress";
import { ruleKey, select } from "./selection";
import { app, connKey } from "./state";
import { endTime } from "./clock";

function nodeReportsOf(): NodeReport[] {
  try {
    return app.tl?.nodeReports() ?? [];
  } catch {
    return [];
  }
}

function flaggedOf(): { denied: Flow[]; forbidden: Flow[] } {
  try {
    return app.tl?.flaggedConnections() ?? { denied: [], forbidden: [] };
  } catch {
    return { denied: [], forbidden: [] };
  }
}

/** Conntrack entries shown at most (the selected packet's first). */
const CT_ROWS = 200;

export function renderConntrack(): void {
  const tbody = $("ct-table").querySelector("tbody")!;
  if (!app.tl || !app.ctNode) {
    tbody.replaceChildren();
    return;
  }
  let head: ConntrackHead;
  try {
    // The module formats only the first lines and those of the selected connection's entries
    // (whose original or reply tuple the connection's packets carried).
    head = app.tl.conntrackHead(app.ctNode, CT_ROWS, app.selected ? [...app.selected.tuples] : undefined);
  } catch (e) {
    tbody.replaceChildren(h("tr", {}, h("td", { class: "error", text: errorText(e) })));
    return;
  }
  const count = head.count;
  const lit = new Set(head.selected);
  const hit = head.selected.map((text) => ({ text, hit: true }));
  const rest = head.lines.filter((l) => !lit.has(l)).map((text) => ({ text, hit: false }));
  const shown = [...hit, ...rest.slice(0, Math.max(0, CT_ROWS - hit.length))];
  tbody.replaceChildren(
    ...shown.map((r) => {
      const tr = h("tr", { testid: "ct-row", class: r.hit ? "selected" : "" });
      tr.append(h("td", { text: r.text }));
      return tr;
    }),
  );
  const node = nodeReportsOf().find((n) => n.name === app.ctNode);
  const ct = node?.conntrack;
  const stats = ct?.stats;
  $("ct-stats").textContent =
    `${count}${ct ? `/${ct.max}` : ""} entries` +
    (stats ? `  insert=${stats.insert} drop=${stats.drop} early_drop=${stats.early_drop}` : "") +
    (stats?.insert_failed ? ` insert_failed=${stats.insert_failed}` : "") +
    (stats?.clash_resolve ? ` clash_resolve=${stats.clash_resolve}` : "") +
    (count > shown.length ? `  (first ${shown.length} shown)` : "");
}

let rulesCache = { node: "", at: -1, text: "" };
export function renderRules(): void {
  const box = $("rules");
  if (!app.tl || !app.rulesNode) {
    box.replaceChildren();
    return;
  }
  if (rulesCache.node !== app.rulesNode || rulesCache.at !== app.T) {
    try {
      rulesCache = { node: app.rulesNode, at: app.T, text: app.tl.rules(app.rulesNode) };
    } catch (e) {
      rulesCache = { node: app.rulesNode, at: app.T, text: `error: ${errorText(e)}` };
    }
  }
  const lit = app.selected?.rules.get(app.rulesNode) ?? new Set<string>();
  // Scroll to the rules of the selected hook first (nat PREROUTING for a DNAT), else any.
  const own = new Set(
    (app.selected?.event.host === app.rulesNode ? app.selected.event.notes : [])
      .map(ruleKey)
      .filter((r): r is string => r !== null),
  );
  let firstLit: HTMLElement | null = null;
  let firstOwn: HTMLElement | null = null;
  let litCount = 0;
  const lines = rulesCache.text.split("\n");
  let chain = ""; // the nft chain a line is in
  box.replaceChildren(
    ...lines.map((line) => {
      const t = line.trim();
      const open = /^chain (\S+) \{$/.exec(t);
      if (open) chain = open[1]!;
      else if (t === "}") chain = "";
      const key = lit.has(t) ? t : `${chain}\u0000${t}`;
      const isLit = lit.has(key);
      const div = h("div", { class: isLit ? "rule lit" : "rule", text: line || " " });
      if (isLit) {
        div.dataset.testid = "rule-lit";
        litCount++;
        firstLit ??= div;
        if (own.has(key)) firstOwn ??= div;
      }
      return div;
    }),
  );
  $("rules-lit-count").textContent = app.selected ? `${litCount} lines matched by the selected packet on ${app.rulesNode}` : "";
  const target = (firstOwn ?? firstLit) as HTMLElement | null;
  if (target) box.scrollTop = Math.max(0, target.offsetTop - 40); // .rules is the offsetParent
}

export function renderPolicy(): void {
  const box = $("policy");
  const items: HTMLElement[] = [];
  if (app.selected) {
    const notes = app.selected.connEvents.flatMap((e) =>
      e.notes
        .filter((n) => n.startsWith("NetworkPolicy") || n.startsWith("policy:") || n.includes("L7 proxy"))
        .map((n) => ({ e, n })),
    );
    const seen = new Set<string>();
    for (const { e, n } of notes) {
      const k = `${e.host}|${n}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const denied = e.verdict === "drop" || e.verdict === "reject";
      items.push(h("div", { class: `verdict ${denied ? "denied" : "allowed"}`, testid: "policy-verdict", text: `${e.host} ${e.hook ?? ""}: ${n}` }));
    }
  }
  const flagged = flaggedOf();
  const denied = flagged.denied.flatMap((f) => f.connections.map((c) => ({ f, c })));
  for (const { f, c } of denied) {
    items.push(h("div", { class: "verdict denied", testid: "policy-denied", text: `flow ${f.name} #${c.id} ${c.from} → ${c.to}: denied` }));
  }
  const refused = flagged.forbidden.flatMap((f) => f.connections.map((c) => ({ f, c })));
  for (const { f, c } of refused) {
    items.push(h("div", { class: "verdict denied", testid: "policy-l7", text: `flow ${f.name} #${c.id} ${c.from} → ${c.to}: HTTP 403 from the L7 proxy (connection allowed, request denied)` }));
  }
  if (items.length === 0) {
    items.push(h("p", { class: "hint", text: "No policy verdict for the selected connection, and no connection denied so far." }));
  }
  box.replaceChildren(...items);
}

/** Lists scrolled to their end once the panels have changed (see scrollToEnd). */
const toEnd = new Set<HTMLElement>();

/**
 * Scrolls `el` to its end after the panels being rendered now have changed: reading its
 * height lays the page out, and one layout for all of them costs less than one per panel.
 */
function scrollToEnd(el: HTMLElement): void {
  if (toEnd.size === 0) {
    queueMicrotask(() => {
      for (const e of toEnd) e.scrollTop = e.scrollHeight;
      toEnd.clear();
    });
  }
  toEnd.add(el);
}

export function renderEvents(): void {
  if (!app.tl) return;
  const box = $("events");
  const count = app.tl.countAtKnown(app.T);
  // Without their connections: a click selects by index, and select() reads the event again.
  const evs = app.tl.plain(Math.max(0, count - 150), count);
  const selIdx = new Set(app.selected?.journey.map((e) => e.index) ?? []);
  box.replaceChildren(
    ...evs.map((e) => {
      const extra = e.kind === "hook" ? `${e.hook ?? ""}${e.after ? " (rewritten)" : ""}` : "";
      const row = h("div", {
        class: `ev ${e.kind}${selIdx.has(e.index) ? " selected" : ""}`,
        testid: "event",
        text: `${fmtTime(e.time)} ${e.kind.padEnd(8)} ${e.iface.padEnd(20)} ${extra} ${e.packet.line}${e.reason ? `  DROP ${e.reason}` : ""}`,
      });
      row.dataset.index = String(e.index);
      row.addEventListener("click", () => select(e.index));
      return row;
    }),
  );
  scrollToEnd(box);
}

export function renderTcpdump(): void {
  if (!app.tl) return;
  const err = $("tcpdump-error");
  const out = $("tcpdump");
  try {
    const { count, lines } = app.tl.tcpdumpTail(app.tcpdumpIface, app.tcpdumpFilter, app.T, 400);
    err.hidden = true;
    $("tcpdump-count").textContent = `${count} packets${count > 400 ? " (last 400 shown)" : ""}`;
    out.textContent = lines.join("\n");
    scrollToEnd(out);
  } catch (e) {
    err.hidden = false;
    err.textContent = errorText(e);
    $("tcpdump-count").textContent = "";
    out.textContent = "";
  }
}

export function renderReport(): void {
  if (!app.tl) return;
  const box = $("report");
  let text: string;
  try {
    text = app.tl.summary();
  } catch (e) {
    box.textContent = errorText(e);
    return;
  }
  if (app.whatIfChanged.size === 0) {
    box.textContent = text;
    return;
  }
  // The lines of the connections What if found changed ("  #N ..." under "flow NAME: ...").
  let flow = "";
  box.replaceChildren(
    ...text.split("\n").flatMap((line, i, all) => {
      const nl = i < all.length - 1 ? "\n" : "";
      flow = /^flow (\S+): /.exec(line)?.[1] ?? flow;
      const id = /^\s+#(\d+)\s/.exec(line)?.[1];
      if (id === undefined || !app.whatIfChanged.has(connKey(flow, id))) return [line + nl];
      const title = "its outcome changes in What if";
      return [h("mark", { class: "whatif-changed", testid: "report-whatif", title, text: line }), nl];
    }),
  );
}

export function renderCounters(): void {
  if (!app.tl) return;
  const time = $("time");
  time.textContent = fmtTime(app.T);
  time.dataset.us = String(app.T);
  $("event-count").textContent = String(app.tl.framesDelivered());
  const end = endTime();
  $("end-time").textContent = end !== null ? fmtTime(end) : `≥ ${fmtTime(app.tl.knownTime())}`;
  const scrub = $<HTMLInputElement>("scrub");
  scrub.max = String(Math.max(1, end ?? app.tl.knownTime()));
  if (document.activeElement !== scrub) scrub.value = String(app.T);
  showProgress(app.tl, $<HTMLProgressElement>("replay-progress"), $("replay-info"), $("window-info"));
}

/** When each costly panel may be refreshed again while playing (wall ms). */
const nextRefresh = new Map<string, number>();

/**
 * Refresh a panel; while playing, a panel that took long (a big tcpdump or conntrack table)
 * waits twenty times its cost before the next refresh, so the animation keeps its pace.
 */
function refresh(name: string, render: () => void): void {
  const now = performance.now();
  if (app.playing && now < (nextRefresh.get(name) ?? 0)) {
    app.panelsDirty = true;
    app.skippedPanels = true;
    return;
  }
  render();
  nextRefresh.set(name, now + 20 * (performance.now() - now));
}

export function renderAll(): void {
  if (!app.tl) return;
  app.panelsDirty = false;
  app.skippedPanels = false;
  drawPackets();
  renderCounters();
  refresh("conntrack", renderConntrack);
  refresh("rules", renderRules);
  refresh("policy", renderPolicy);
  refresh("events", renderEvents);
  refresh("tcpdump", renderTcpdump);
  refresh("report", renderReport);
  if (app.selected) refresh("packet", renderPacket);
  app.needsDraw = false;
  app.lastPanels = performance.now();
}

export function renderNodeTabs(): void {
  const tabs = (container: HTMLElement, current: string, prefix: string, pick: (n: string) => void): void => {
    container.replaceChildren(
      ...app.nodeNames.map((n) => {
        const b = h("button", { class: n === current ? "tab on" : "tab", testid: `${prefix}-${n}`, text: n });
        b.addEventListener("click", () => pick(n));
        return b;
      }),
    );
  };
  tabs($("ct-nodes"), app.ctNode, "ct-node", (n) => {
    app.ctNode = n;
    renderNodeTabs();
    renderConntrack();
  });
  tabs($("rules-nodes"), app.rulesNode, "rules-node", (n) => {
    app.rulesNode = n;
    renderNodeTabs();
    renderRules();
  });
}
