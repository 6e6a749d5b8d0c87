// The podnet playground: a scenario simulated by the wasm build of podnet, drawn and replayed
// in virtual time.
import { init, check, examples, version } from "./podnet";
import type { ConntrackEntry, Example, PacketInfo, Report, SimEvent } from "./podnet";
import { YamlEditor } from "./editor";
import { LESSONS, dstOf, srcOf } from "./lessons";
import type { Lesson, Panel } from "./lessons";
import { FlightTracker, packetKey } from "./packets";
import { Timeline } from "./store";
import { showProgress } from "./progress";
import { TopologyView, drawnTopology, svgEl } from "./topology";

// ---------------------------------------------------------------------------------------
// DOM helpers

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el as T;
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; testid?: string; title?: string; text?: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.testid) el.dataset.testid = props.testid;
  if (props.title) el.title = props.title;
  if (props.text !== undefined) el.textContent = props.text;
  el.append(...children);
  return el;
}

/** Virtual µs as tcpdump prints them: seconds with 6 decimals. */
function fmtTime(us: number): string {
  const s = Math.floor(us / 1e6);
  const frac = String(Math.round(us - s * 1e6)).padStart(6, "0");
  return `${s}.${frac} s`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------
// State

const editor = new YamlEditor($<HTMLTextAreaElement>("yaml"), $("gutter"), $("inline-errors"), $("yaml-errors"));
const svg = $("topology") as unknown as SVGSVGElement;
const gStatic = $("topo-static") as unknown as SVGGElement;
const gDrops = $("topo-drops") as unknown as SVGGElement;

let bundled: Example[] = [];
let tl: Timeline | null = null;
let topoView: TopologyView | null = null;
let flights: FlightTracker | null = null;
let podHosts = new Set<string>();
let nodeNames: string[] = [];

/** Displayed virtual time (µs). */
let T = 0;
/** The time a replay in progress is heading for (the display still shows T). */
let replayTarget: number | null = null;
/** How long a replay may block the page before it goes on frame by frame. */
const SYNC_REPLAY_MS = 60;
/** ...and then this much per frame (the page redraws the progress at ~30 fps meanwhile). */
const REPLAY_FRAME_MS = 25;
let playing = false;
let speed = 100; // virtual µs per wall second
let lastFrame = performance.now();
let needsDraw = true;
let panelsDirty = true;
let lastPanels = 0;
let lastPanelCount = -1;

interface Selection {
  event: SimEvent;
  conn: { flow: string; id: number } | null;
  /** Every hop of the selected packet, in order. */
  journey: SimEvent[];
  /** The connection's events around the packet. */
  connEvents: SimEvent[];
  /** Address pairs the connection was seen with ("src:sport>dst:dport"). */
  tuples: Set<string>;
  /** iptables-save lines matched on the way, per node. */
  rules: Map<string, Set<string>>;
}
let selected: Selection | null = null;
let selEpoch = 0;
let ctNode = "";
let rulesNode = "";
let tcpdumpIface = "any";
let tcpdumpFilter = "";

// Lesson state.
let lesson: Lesson | null = null;
let lessonStep = 0;

// ---------------------------------------------------------------------------------------
// Loading

function setStatus(text: string, kind: "ok" | "error" | "busy" = "ok"): void {
  const s = $("status");
  s.textContent = text;
  s.className = `status ${kind}`;
}

/** Load YAML text into the page. Returns false (errors shown inline) when it does not load. */
function load(yaml: string): boolean {
  const diags = check(yaml);
  editor.show(diags);
  if (diags.some((d) => d.severity === "error")) {
    setStatus("the scenario has errors: see the editor", "error");
    return false;
  }
  let next: Timeline;
  try {
    next = new Timeline(yaml);
  } catch (e) {
    editor.show([
      { severity: "error", file: "scenario.yaml", line: null, column: null, message: errorText(e), text: errorText(e) },
    ]);
    setStatus("the scenario did not load", "error");
    return false;
  }
  tl?.free();
  tl = next;
  T = 0;
  replayTarget = null;
  playing = false;
  selected = null;
  const topo = tl.view.topology();
  gStatic.replaceChildren();
  gDrops.replaceChildren();
  topoView = new TopologyView(topo, gStatic);
  svg.setAttribute("viewBox", `0 0 ${topoView.width} ${topoView.height}`);
  svg.style.aspectRatio = `${topoView.width} / ${topoView.height}`;
  flights = new FlightTracker(drawnTopology(topo).links);
  lastPanelCount = -1;
  gDrops.dataset.key = "";
  podHosts = new Set([...topo.pods.map((p) => p.name), ...topo.externals.map((e) => e.name)]);
  nodeNames = topo.nodes.filter((n) => n.role === "node").map((n) => n.name);
  document.body.dataset.drawnNodes = drawnTopology(topo).nodes.map((n) => n.name).join(",");
  if (!nodeNames.includes(ctNode)) ctNode = nodeNames[0] ?? "";
  if (!nodeNames.includes(rulesNode)) rulesNode = nodeNames[0] ?? "";
  const ifaces = ["any", ...tl.view.interfaces()];
  if (!ifaces.includes(tcpdumpIface)) tcpdumpIface = "any";
  const sel = $<HTMLSelectElement>("tcpdump-iface");
  sel.replaceChildren(...ifaces.map((i) => h("option", { text: i })));
  sel.value = tcpdumpIface;
  renderNodeTabs();
  setStatus(`loaded ${tl.view.name}: ${topo.nodes.length} nodes, ${topo.pods.length} pods, ${topo.services.length} services (${topo.cluster.proxy})`);
  document.body.dataset.loaded = tl.view.name;
  needsDraw = true;
  panelsDirty = true;
  renderPacket();
  return true;
}

function loadExample(name: string): boolean {
  const ex = bundled.find((e) => e.name === name);
  if (!ex) return false;
  editor.value = ex.yaml;
  $<HTMLSelectElement>("example-select").value = name;
  return load(ex.yaml);
}

function renderNodeTabs(): void {
  const tabs = (container: HTMLElement, current: string, prefix: string, pick: (n: string) => void): void => {
    container.replaceChildren(
      ...nodeNames.map((n) => {
        const b = h("button", { class: n === current ? "tab on" : "tab", testid: `${prefix}-${n}`, text: n });
        b.addEventListener("click", () => pick(n));
        return b;
      }),
    );
  };
  tabs($("ct-nodes"), ctNode, "ct-node", (n) => {
    ctNode = n;
    renderNodeTabs();
    renderConntrack();
  });
  tabs($("rules-nodes"), rulesNode, "rules-node", (n) => {
    rulesNode = n;
    renderNodeTabs();
    renderRules();
  });
}

// ---------------------------------------------------------------------------------------
// Time

function endTime(): number | null {
  return tl?.endTime ?? null;
}

/** Where the display is heading: the target of a replay in progress, else the time shown. */
function targetTime(): number {
  return replayTarget ?? T;
}

/**
 * Move the displayed time (clamped), replaying when it goes back. A long replay goes on over
 * the next frames (the page stays responsive and says how far it got); the tables keep the
 * old time until it is done.
 */
function seek(t: number): void {
  if (!tl) return;
  const end = endTime();
  const target = Math.max(0, end !== null ? Math.min(t, end) : t);
  if (tl.seek(target, SYNC_REPLAY_MS)) {
    T = target;
    replayTarget = null;
  } else {
    // Goes on over the next frames; playing resumes from there.
    replayTarget = target;
  }
  document.body.dataset.replaying = String(replayTarget !== null);
  needsDraw = true;
  panelsDirty = true;
}

function stepForward(): void {
  if (!tl) return;
  playing = false;
  const next = tl.nextTime(targetTime());
  if (next !== null) seek(next);
  if (replayTarget === null) renderAll();
}

function stepBack(): void {
  if (!tl) return;
  playing = false;
  seek(tl.prevTime(targetTime()));
  if (replayTarget === null) renderAll(); // else the frame loop renders once the re-run is done
}

function togglePlay(): void {
  if (!tl) return;
  const end = endTime();
  if (!playing && end !== null && T >= end) seek(0);
  playing = !playing;
  lastFrame = performance.now();
  panelsDirty = true;
  $("play").textContent = playing ? "❙❙ pause" : "▶ play";
}

// ---------------------------------------------------------------------------------------
// Drawing packets

// Packets are drawn on a canvas over the SVG (hundreds of moving SVG nodes are slow to
// repaint); the static cluster and the drop marks stay SVG.
const canvas = $<HTMLCanvasElement>("packets");
const ctx2d = canvas.getContext("2d")!;
let inFlight = 0;
/** What is on the canvas now, in viewBox coordinates (for clicks, hovers and tests). */
let drawn: { x: number; y: number; index: number; label: string }[] = [];
/** The drop marks (SVG, under the canvas: clicks reach them through packetAt). */
let dropMarks: typeof drawn = [];

const COLORS: Record<string, string> = {
  syn: "#16a34a",
  fin: "#9333ea",
  rst: "#dc2626",
  data: "#2563eb",
  ack: "#64748b",
  udp: "#0891b2",
  icmp: "#ea580c",
  arp: "#a3a3a3",
  other: "#444444",
};

function packetKind(p: PacketInfo): string {
  const inner = p.vxlan ?? p;
  if (inner.proto !== "tcp") return inner.proto;
  const f = inner.flags ?? "";
  if (f.includes("R")) return "rst";
  if (f.includes("S")) return "syn";
  if (f.includes("F")) return "fin";
  if (inner.len > 60) return "data";
  return "ack";
}

/** viewBox units -> canvas pixels. */
function canvasScale(): number {
  const w = svg.clientWidth;
  const dpr = window.devicePixelRatio || 1;
  const pw = Math.round(w * dpr);
  const ph = Math.round(svg.clientHeight * dpr);
  if (canvas.width !== pw || canvas.height !== ph) {
    canvas.width = pw;
    canvas.height = ph;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${svg.clientHeight}px`;
  }
  return topoView ? (w * dpr) / topoView.width : 1;
}

function drawPackets(): void {
  if (!tl || !topoView || !flights) return;
  const { flights: fl, drops } = flights.at(tl, T, Math.max(speed * 0.8, 1));
  inFlight = fl.length;
  const scale = canvasScale();
  ctx2d.setTransform(1, 0, 0, 1, 0, 0);
  ctx2d.clearRect(0, 0, canvas.width, canvas.height);
  ctx2d.setTransform(scale, 0, 0, scale, 0, 0);
  const selIndices = new Set(selected?.journey.map((e) => e.index) ?? []);
  const next: typeof drawn = [];
  const byColor = new Map<string, { x: number; y: number }[]>();
  const sel: { x: number; y: number }[] = [];
  for (const f of fl) {
    const a = topoView.pos(f.sent.iface);
    const b = topoView.pos(f.recv.iface);
    const span = f.recv.time - f.sent.time;
    const k = span > 0 ? (T - f.sent.time) / span : 1;
    const x = a.x + (b.x - a.x) * k;
    const y = a.y + (b.y - a.y) * k;
    next.push({ x, y, index: f.sent.index, label: `${f.sent.iface} → ${f.recv.iface}: ${f.sent.packet.line}` });
    if (selIndices.has(f.sent.index) || selIndices.has(f.recv.index)) sel.push({ x, y });
    const color = COLORS[packetKind(f.sent.packet)] ?? "#444";
    let list = byColor.get(color);
    if (!list) byColor.set(color, (list = []));
    list.push({ x, y });
  }
  // One path per colour: a few fills per frame whatever the number of packets.
  ctx2d.lineWidth = 1.5;
  ctx2d.strokeStyle = "#ffffff";
  for (const [color, pts] of byColor) {
    ctx2d.beginPath();
    for (const p of pts) {
      ctx2d.moveTo(p.x + 6, p.y);
      ctx2d.arc(p.x, p.y, 6, 0, Math.PI * 2);
    }
    ctx2d.fillStyle = color;
    ctx2d.fill();
    ctx2d.stroke();
  }
  if (sel.length > 0) {
    ctx2d.beginPath();
    for (const p of sel) {
      ctx2d.moveTo(p.x + 10, p.y);
      ctx2d.arc(p.x, p.y, 10, 0, Math.PI * 2);
    }
    ctx2d.lineWidth = 4;
    ctx2d.strokeStyle = "#f59e0b";
    ctx2d.stroke();
  }
  drawn = next;
  canvas.dataset.count = String(drawn.length);
  const dropKey = drops.map((d) => d.index).join(",");
  if (gDrops.dataset.key === dropKey) {
    $("in-flight").textContent = String(inFlight);
    return;
  }
  gDrops.dataset.key = dropKey;
  dropMarks = drops.slice(-30).map((d) => {
    const p = topoView!.pos(d.iface);
    return { x: p.x, y: p.y, index: d.index, label: `dropped at ${d.iface}: ${d.reason ?? ""}` };
  });
  gDrops.replaceChildren(
    ...drops.slice(-30).map((d) => {
      const p = topoView!.pos(d.iface);
      const g = svgEl("g", { class: "drop", "data-index": d.index });
      g.append(
        svgEl("path", { d: `M${p.x - 7} ${p.y - 7} L${p.x + 7} ${p.y + 7} M${p.x + 7} ${p.y - 7} L${p.x - 7} ${p.y + 7}` }),
        svgEl("title", {}, `dropped at ${d.iface}: ${d.reason ?? ""}`),
      );
      g.addEventListener("click", () => select(d.index));
      return g;
    }),
  );
  $("in-flight").textContent = String(inFlight);
}

/** The packet drawn nearest to a mouse position (within 12 px), if any. */
function packetAt(ev: MouseEvent): (typeof drawn)[number] | null {
  if (!topoView) return null;
  const r = canvas.getBoundingClientRect();
  const k = topoView.width / r.width;
  const x = (ev.clientX - r.left) * k;
  const y = (ev.clientY - r.top) * k;
  let best: (typeof drawn)[number] | null = null;
  let bestD = (12 * k) ** 2;
  for (const p of [...drawn, ...dropMarks]) {
    const d = (p.x - x) ** 2 + (p.y - y) ** 2;
    if (d < bestD) {
      bestD = d;
      best = p;
    }
  }
  return best;
}

/** Where packet `i` of the canvas is, in page pixels (used by the e2e tests). */
function packetScreenPos(i: number): { x: number; y: number; index: number } | null {
  const p = drawn[i];
  if (!p || !topoView) return null;
  const r = canvas.getBoundingClientRect();
  const k = r.width / topoView.width;
  return { x: r.left + p.x * k, y: r.top + p.y * k, index: p.index };
}
(window as unknown as { podnetPacket: typeof packetScreenPos }).podnetPacket = packetScreenPos;

// ---------------------------------------------------------------------------------------
// Selection: a packet, hop by hop

const tupleOf = (p: PacketInfo): string => `${srcOf(p)}>${dstOf(p)}`;
const reverseOf = (p: PacketInfo): string => `${dstOf(p)}>${srcOf(p)}`;
const RULE_NOTE = /^(raw|mangle|nat|filter|security) (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING): (-A .*|add rule .*)$/;
const NFT_RULE = /^add rule \S+ \S+ (\S+) (.*)$/;

/**
 * The rule a hook note says matched, as a key of the rules panel's lines: iptables notes
 * carry the iptables-save line itself; nftables notes carry `add rule FAMILY TABLE CHAIN
 * RULE`, which `nft list ruleset` prints as RULE inside `chain CHAIN { ... }`.
 */
function ruleKey(note: string): string | null {
  const m = RULE_NOTE.exec(note);
  if (!m) return null;
  const rule = m[3]!;
  const nft = NFT_RULE.exec(rule);
  return nft ? `${nft[1]}\u0000${nft[2]}` : rule;
}

function select(index: number): void {
  if (!tl) return;
  selEpoch = tl.epoch;
  const e = tl.event(index);
  if (!e) return;
  // The connection's events around the packet (bounded, so big runs stay quick).
  const from = Math.max(0, index - 4000);
  tl.event(index + 4000); // make sure the lookahead covers the neighbourhood
  const around = tl.known(from, index + 4000);
  const sameConn = (x: SimEvent): boolean =>
    e.conn !== null && x.conn !== null && x.conn.flow === e.conn.flow && x.conn.id === e.conn.id;
  const connEvents = e.conn ? around.filter(sameConn) : around.filter((x) => packetKey(x.packet) === packetKey(e.packet));
  // The packet's hops: same key, between the send from a pod before it and the next one.
  const key = packetKey(e.packet);
  const sameKey = connEvents.filter((x) => packetKey(x.packet) === key);
  const pos = sameKey.findIndex((x) => x.index === e.index);
  let start = pos;
  while (start > 0 && !(sameKey[start]!.kind === "sent" && podHosts.has(sameKey[start]!.host))) start--;
  let end = pos + 1;
  while (end < sameKey.length && !(sameKey[end]!.kind === "sent" && podHosts.has(sameKey[end]!.host))) end++;
  const journey = pos >= 0 ? sameKey.slice(start, end) : [e];
  const tuples = new Set<string>();
  for (const x of connEvents) {
    tuples.add(tupleOf(x.packet));
    tuples.add(reverseOf(x.packet));
    if (x.after) {
      tuples.add(tupleOf(x.after));
      tuples.add(reverseOf(x.after));
    }
  }
  const rules = new Map<string, Set<string>>();
  for (const x of journey) {
    for (const n of x.notes) {
      const key = ruleKey(n);
      if (key === null) continue;
      let set = rules.get(x.host);
      if (!set) rules.set(x.host, (set = new Set()));
      set.add(key);
    }
  }
  selected = { event: e, conn: e.conn, journey, connEvents, tuples, rules };
  // Show the tables of the node the packet crosses first (with rules, if any).
  const firstRuleNode = [...rules.keys()].find((n) => nodeNames.includes(n));
  const firstNode = journey.find((x) => nodeNames.includes(x.host))?.host;
  const node = nodeNames.includes(e.host) ? e.host : (firstRuleNode ?? firstNode);
  if (node) {
    ctNode = node;
    rulesNode = firstRuleNode ?? node;
    renderNodeTabs();
  }
  document.body.dataset.selected = String(index);
  needsDraw = true;
  renderPacket();
  renderConntrack();
  renderRules();
  renderPolicy();
  renderEvents();
}

/** "10.96.0.10:80" with the parts that differ from `ref` marked. */
function addrSpan(ip: string, port: number | null, refIp: string, refPort: number | null): HTMLElement {
  const span = h("span", { class: "addr" });
  span.append(ip === refIp ? ip : h("mark", { text: ip }));
  if (port !== null) {
    span.append(":");
    span.append(port === refPort ? String(port) : h("mark", { text: String(port) }));
  }
  return span;
}

function headerSpan(p: PacketInfo, ref: PacketInfo): HTMLElement {
  return h(
    "span",
    { class: "hdr" },
    addrSpan(p.src, p.sport, ref.src, ref.sport),
    " → ",
    addrSpan(p.dst, p.dport, ref.dst, ref.dport),
  );
}

function where(e: SimEvent): string {
  if (e.kind === "hook") return `${e.host} ${e.hook ?? ""}`;
  return e.iface;
}

function renderPacket(): void {
  const body = $("packet-body");
  if (!selected) {
    body.replaceChildren(h("p", { class: "hint", text: "No packet selected: click a moving packet or an event." }));
    return;
  }
  const { event: e, journey, conn, connEvents } = selected;
  const first = journey[0]?.packet ?? e.packet;
  const inner = e.packet.vxlan ?? e.packet;
  const head = h(
    "div",
    { class: "sel-head", testid: "selected-packet" },
    h("b", { text: `${inner.proto.toUpperCase()} ${inner.flags ? `[${inner.flags}] ` : ""}` }),
    `${srcOf(first)} → ${dstOf(first)}`,
    conn ? h("span", { class: "conn", testid: "selected-conn", text: ` flow ${conn.flow} #${conn.id}` }) : "",
  );
  const rows: HTMLElement[] = [];
  for (const x of journey) {
    const tr = h("tr", { testid: "hop" });
    tr.dataset.index = String(x.index);
    if (x.index === e.index) tr.classList.add("current");
    if (x.time > T) tr.classList.add("future");
    const hdr = h("td", { class: "mono" });
    if (x.after) {
      const rw = h("span", { class: "rewrite", testid: "hop-rewrite" });
      rw.append(
        h("span", { class: "before", text: `${srcOf(x.packet)} → ${dstOf(x.packet)}` }),
        "  ⇒  ",
        h("span", { class: "after" }, headerSpan(x.after, x.packet)),
      );
      hdr.append(rw);
    } else {
      hdr.append(headerSpan(x.packet, first));
    }
    if (x.packet.vxlan) hdr.append(h("div", { class: "hint", text: `outer ${x.packet.line}` }));
    tr.append(h("td", { class: "mono", text: fmtTime(x.time) }), h("td", { class: `kind ${x.kind}`, text: `${x.kind} ${where(x)}` }), hdr);
    tr.addEventListener("click", () => select(x.index));
    rows.push(tr);
    // What the hook did, under the hop: NAT, conntrack and policy notes in full, the rules
    // walked folded (they are lit in the rules panel).
    const notes = h("td", { class: "notes" });
    notes.colSpan = 3;
    const ruleNotes = x.notes.filter((n) => RULE_NOTE.test(n));
    for (const n of x.notes) {
      if (RULE_NOTE.test(n)) continue;
      const cls = n.startsWith("NetworkPolicy") ? "note policy" : n.startsWith("nat") ? "note nat" : "note";
      notes.append(h("div", { class: cls, text: n }));
    }
    if (ruleNotes.length > 0) {
      const d = h("details", { class: "note rule" });
      d.open = x.index === e.index;
      d.append(h("summary", { text: `${ruleNotes.length} rules matched` }), ...ruleNotes.map((n) => h("div", { text: n })));
      notes.append(d);
    }
    if (x.reason) notes.append(h("div", { class: "note drop", testid: "drop-reason", text: `DROP: ${x.reason}` }));
    if (x.verdict && x.verdict !== "accept") notes.append(h("div", { class: "note drop", text: `verdict ${x.verdict}` }));
    if (notes.childElementCount > 0) {
      const nr = h("tr", { class: `notes-row${x.index === e.index ? " current" : ""}${x.time > T ? " future" : ""}` }, notes);
      rows.push(nr);
    }
  }
  const table = h("table", { class: "hops" }, h("tbody", {}, ...rows));
  const rest = h("details", { class: "conn-events" });
  rest.append(h("summary", { text: `the whole connection: ${connEvents.length} events nearby` }));
  rest.addEventListener("toggle", () => {
    if (!rest.open || rest.childElementCount > 1) return;
    const list = h("div", { class: "mono events" });
    for (const x of connEvents.slice(0, 400)) {
      const row = h("div", { class: `ev ${x.kind}`, text: `${fmtTime(x.time)} ${x.kind.padEnd(8)} ${where(x).padEnd(22)} ${x.packet.line}` });
      row.addEventListener("click", () => select(x.index));
      list.append(row);
    }
    rest.append(list);
    if (conn && tl) {
      try {
        rest.append(h("h3", { text: `podnet trace --flow ${conn.flow} --conn ${conn.id} (up to the time shown)` }));
        rest.append(h("pre", { class: "mono trace", text: tl.traceText(conn.flow, conn.id) }));
      } catch (err) {
        rest.append(h("div", { class: "error", text: errorText(err) }));
      }
    }
  });
  body.replaceChildren(head, table, rest);
}

// ---------------------------------------------------------------------------------------
// Panels that follow the time shown

function ctSelected(c: ConntrackEntry): boolean {
  if (!selected) return false;
  const o = `${c.orig.src}:${c.orig.sport}>${c.orig.dst}:${c.orig.dport}`;
  const r = `${c.reply.src}:${c.reply.sport}>${c.reply.dst}:${c.reply.dport}`;
  return selected.tuples.has(o) || selected.tuples.has(r);
}

function reportOf(): Report | null {
  try {
    return tl?.view.report() ?? null;
  } catch {
    return null;
  }
}

function renderConntrack(): void {
  const tbody = $("ct-table").querySelector("tbody")!;
  if (!tl || !ctNode) {
    tbody.replaceChildren();
    return;
  }
  let entries: ConntrackEntry[];
  try {
    entries = tl.view.conntrack(ctNode);
  } catch (e) {
    tbody.replaceChildren(h("tr", {}, h("td", { class: "error", text: errorText(e) })));
    return;
  }
  const hit = entries.filter(ctSelected);
  const shown = [...hit, ...entries.filter((c) => !ctSelected(c)).slice(0, Math.max(0, 200 - hit.length))];
  tbody.replaceChildren(
    ...shown.map((c) => {
      const tr = h("tr", { testid: "ct-row", class: ctSelected(c) ? "selected" : "" });
      tr.append(h("td", { text: c.text }));
      return tr;
    }),
  );
  const node = reportOf()?.nodes.find((n) => n.name === ctNode);
  const ct = node?.conntrack;
  const stats = ct?.stats;
  $("ct-stats").textContent =
    `${entries.length}${ct ? `/${ct.max}` : ""} entries` +
    (stats ? `  insert=${stats.insert} drop=${stats.drop} early_drop=${stats.early_drop}` : "") +
    (entries.length > shown.length ? `  (first ${shown.length} shown)` : "");
}

let rulesCache = { node: "", at: -1, text: "" };
function renderRules(): void {
  const box = $("rules");
  if (!tl || !rulesNode) {
    box.replaceChildren();
    return;
  }
  if (rulesCache.node !== rulesNode || rulesCache.at !== T) {
    try {
      rulesCache = { node: rulesNode, at: T, text: tl.view.rules(rulesNode) };
    } catch (e) {
      rulesCache = { node: rulesNode, at: T, text: `error: ${errorText(e)}` };
    }
  }
  const lit = selected?.rules.get(rulesNode) ?? new Set<string>();
  // Scroll to the rules of the selected hook first (nat PREROUTING for a DNAT), else any.
  const own = new Set(
    (selected?.event.host === rulesNode ? selected.event.notes : [])
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
  $("rules-lit-count").textContent = selected ? `${litCount} lines matched by the selected packet on ${rulesNode}` : "";
  const target = (firstOwn ?? firstLit) as HTMLElement | null;
  if (target) box.scrollTop = Math.max(0, target.offsetTop - 40); // .rules is the offsetParent
}

function renderPolicy(): void {
  const box = $("policy");
  const items: HTMLElement[] = [];
  if (selected) {
    const notes = selected.connEvents.flatMap((e) =>
      e.notes.filter((n) => n.startsWith("NetworkPolicy")).map((n) => ({ e, n })),
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
  const denied = (reportOf()?.flows ?? []).flatMap((f) => f.connections.filter((c) => c.outcome === "denied").map((c) => ({ f, c })));
  for (const { f, c } of denied) {
    items.push(h("div", { class: "verdict denied", testid: "policy-denied", text: `flow ${f.name} #${c.id} ${c.from} → ${c.to}: denied` }));
  }
  if (items.length === 0) {
    items.push(h("p", { class: "hint", text: "No policy verdict for the selected connection, and no connection denied so far." }));
  }
  box.replaceChildren(...items);
}

function renderEvents(): void {
  if (!tl) return;
  const box = $("events");
  const count = tl.countAtKnown(T);
  const evs = tl.known(Math.max(0, count - 150), count);
  const selIdx = new Set(selected?.journey.map((e) => e.index) ?? []);
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
  box.scrollTop = box.scrollHeight;
}

function renderTcpdump(): void {
  if (!tl) return;
  const err = $("tcpdump-error");
  const out = $("tcpdump");
  try {
    const lines = tl.tcpdump(tcpdumpIface, tcpdumpFilter, T);
    err.hidden = true;
    $("tcpdump-count").textContent = `${lines.length} packets${lines.length > 400 ? " (last 400 shown)" : ""}`;
    out.textContent = lines.slice(-400).join("\n");
    out.scrollTop = out.scrollHeight;
  } catch (e) {
    err.hidden = false;
    err.textContent = errorText(e);
    $("tcpdump-count").textContent = "";
    out.textContent = "";
  }
}

function renderReport(): void {
  if (!tl) return;
  try {
    $("report").textContent = tl.view.summary();
  } catch (e) {
    $("report").textContent = errorText(e);
  }
}

function renderCounters(): void {
  if (!tl) return;
  const time = $("time");
  time.textContent = fmtTime(T);
  time.dataset.us = String(T);
  $("event-count").textContent = String(tl.view.framesDelivered());
  const end = endTime();
  $("end-time").textContent = end !== null ? fmtTime(end) : `≥ ${fmtTime(tl.knownTime())}`;
  const scrub = $<HTMLInputElement>("scrub");
  scrub.max = String(Math.max(1, end ?? tl.knownTime()));
  if (document.activeElement !== scrub) scrub.value = String(T);
  showProgress(tl, $<HTMLProgressElement>("replay-progress"), $("replay-info"), $("window-info"));
}

/** When each costly panel may be refreshed again while playing (wall ms). */
const nextRefresh = new Map<string, number>();
/** Whether a panel was left stale by refresh() and waits for its turn. */
let skippedPanels = false;

/**
 * Refresh a panel; while playing, a panel that took long (a big tcpdump or conntrack table)
 * waits twenty times its cost before the next refresh, so the animation keeps its pace.
 */
function refresh(name: string, render: () => void): void {
  const now = performance.now();
  if (playing && now < (nextRefresh.get(name) ?? 0)) {
    panelsDirty = true;
    skippedPanels = true;
    return;
  }
  render();
  nextRefresh.set(name, now + 20 * (performance.now() - now));
}

function renderAll(): void {
  if (!tl) return;
  panelsDirty = false;
  skippedPanels = false;
  drawPackets();
  renderCounters();
  refresh("conntrack", renderConntrack);
  refresh("rules", renderRules);
  refresh("policy", renderPolicy);
  refresh("events", renderEvents);
  refresh("tcpdump", renderTcpdump);
  refresh("report", renderReport);
  if (selected) refresh("packet", renderPacket);
  needsDraw = false;
  lastPanels = performance.now();
}

// ---------------------------------------------------------------------------------------
// The frame loop

let frames = 0;
let fpsWindow = performance.now();
let seekTarget: number | null = null;

/** One animation frame; an error is shown and playing stops, but the loop goes on. */
function frame(now: number): void {
  try {
    advanceFrame(now);
  } catch (e) {
    playing = false;
    $("play").textContent = "▶ play";
    setStatus(`error: ${errorText(e)}`, "error");
    console.error(e);
  }
  requestAnimationFrame(frame);
}

function advanceFrame(now: number): void {
  // rAF time can be a little before the performance.now() a click stored: never go back.
  const dt = Math.max(0, Math.min(now - lastFrame, 250));
  lastFrame = now;
  frames++;
  if (now - fpsWindow >= 1000) {
    $("fps").textContent = `${Math.round((frames * 1000) / (now - fpsWindow))} fps`;
    frames = 0;
    fpsWindow = now;
  }
  if (tl) {
    // A new recording numbers events afresh: a selection made in the old one is let go.
    if (selected && selEpoch !== tl.epoch) (selected = null), renderPacket();
    if (seekTarget !== null) {
      seek(seekTarget);
      seekTarget = null;
    }
    if (replayTarget !== null) {
      if (tl.continueReplay(REPLAY_FRAME_MS)) {
        T = replayTarget;
        replayTarget = null;
        document.body.dataset.replaying = "false";
        needsDraw = true;
        panelsDirty = true;
      } else {
        renderCounters();
        return;
      }
    }
    if (playing) {
      let t = T + (dt / 1000) * speed;
      // Skip quiet stretches: nothing on the wires and the next event far away.
      if ($<HTMLInputElement>("skip-idle").checked && inFlight === 0) {
        const next = tl.nextTime(T);
        if (next !== null && next - T > speed * 0.4) t = Math.max(t, next - speed * 0.05);
      }
      const end = endTime();
      if (end !== null && t >= end) {
        t = end;
        playing = false;
        panelsDirty = true;
        $("play").textContent = "▶ play";
      }
      seek(t);
    } else if (tl.endTime === null) {
      // Idle: find where the scenario ends, a few milliseconds of work per frame.
      tl.explore(8);
      renderCounters();
    }
    if (needsDraw) {
      drawPackets();
      renderCounters();
      needsDraw = false;
    }
    if (panelsDirty && (!playing || now - lastPanels > 250)) {
      // While playing, the tables only change when events happen.
      const count = tl.view.framesDelivered();
      if (!playing || count !== lastPanelCount || skippedPanels) {
        lastPanelCount = count;
        renderAll();
      } else {
        panelsDirty = false;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Lessons

function lessonExample(l: Lesson, stepIdx: number): string | null {
  const step = l.steps[stepIdx];
  if (!step) return null;
  const m = step.example;
  const found = typeof m === "string" ? bundled.find((e) => e.name === m) : bundled.find((e) => m.test(e.name));
  return found?.name ?? null;
}

function flash(panels: Panel[]): void {
  const ids: Record<Panel, string> = {
    packet: "packet-panel",
    conntrack: "conntrack-panel",
    rules: "rules-panel",
    policy: "policy-panel",
    tcpdump: "tcpdump-panel",
    events: "events-panel",
    report: "report-panel",
    topology: "stage",
  };
  for (const el of document.querySelectorAll(".look")) el.classList.remove("look");
  for (const p of panels) $(ids[p]).classList.add("look");
}

function showLesson(): void {
  const panel = $("lesson-panel");
  if (!lesson) {
    panel.hidden = true;
    flash([]);
    return;
  }
  panel.hidden = false;
  $("lesson-title").textContent = lesson.title;
  const available = lesson.steps.length > 0 && lessonExample(lesson, lessonStep) !== null;
  if (!available) {
    $("lesson-step-title").textContent = "Not available yet";
    $("lesson-text").replaceChildren(h("p", { testid: "lesson-unavailable", text: lesson.unavailable ?? "No bundled example for this lesson." }));
    $("lesson-look").textContent = "";
    $("lesson-progress").textContent = "";
    return;
  }
  const step = lesson.steps[lessonStep]!;
  $("lesson-step-title").textContent = step.title;
  $("lesson-text").replaceChildren(...step.text.split("\n\n").map((p) => h("p", { text: p })));
  $("lesson-progress").textContent = `${lessonStep + 1} / ${lesson.steps.length}`;
  const exName = lessonExample(lesson, lessonStep)!;
  if (tl?.yaml !== bundled.find((e) => e.name === exName)?.yaml) loadExample(exName);
  if (!tl) return;
  const found = tl.find(step.find);
  if (!found) {
    $("lesson-look").textContent = "The packet this step is about did not happen in this run.";
    setStatus("lesson step: packet not found", "error");
    return;
  }
  playing = false;
  seek(found.time);
  select(found.index);
  if (step.node && nodeNames.includes(step.node)) {
    ctNode = step.node;
    rulesNode = step.node;
    renderNodeTabs();
  }
  renderAll();
  $("lesson-look").textContent = `Look at: ${step.look.join(", ")}.`;
  flash(step.look);
  document.body.dataset.lessonStep = `${lesson.id}:${lessonStep}`;
}

function startLesson(id: string): void {
  lesson = LESSONS.find((l) => l.id === id) ?? null;
  lessonStep = 0;
  showLesson();
}

// ---------------------------------------------------------------------------------------
// Wiring

function download(bytes: Uint8Array, name: string): void {
  const copy = new Uint8Array(bytes); // detach from wasm memory
  const url = URL.createObjectURL(new Blob([copy], { type: "application/vnd.tcpdump.pcap" }));
  const a = h("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function wire(): void {
  $("load").addEventListener("click", () => load(editor.value));
  editor.textarea.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      load(editor.value);
    }
  });
  let checkTimer = 0;
  editor.textarea.addEventListener("input", () => {
    clearTimeout(checkTimer);
    checkTimer = window.setTimeout(() => editor.show(check(editor.value)), 300);
  });
  $<HTMLSelectElement>("example-select").addEventListener("change", (e) => {
    lesson = null;
    showLesson();
    loadExample((e.target as HTMLSelectElement).value);
  });
  $<HTMLSelectElement>("lesson-select").addEventListener("change", (e) => startLesson((e.target as HTMLSelectElement).value));
  $("lesson-next").addEventListener("click", () => {
    if (lesson && lessonStep < lesson.steps.length - 1) {
      lessonStep++;
      showLesson();
    }
  });
  $("lesson-prev").addEventListener("click", () => {
    if (lesson && lessonStep > 0) {
      lessonStep--;
      showLesson();
    }
  });
  $("lesson-close").addEventListener("click", () => {
    lesson = null;
    $<HTMLSelectElement>("lesson-select").value = "";
    showLesson();
  });
  canvas.addEventListener("click", (ev) => {
    const p = packetAt(ev);
    if (p) select(p.index);
  });
  canvas.addEventListener("mousemove", (ev) => {
    const p = packetAt(ev);
    canvas.title = p ? p.label : "";
    canvas.style.cursor = p ? "pointer" : "default";
  });
  $("play").addEventListener("click", togglePlay);
  $("step").addEventListener("click", stepForward);
  $("step-back").addEventListener("click", stepBack);
  const scrub = $<HTMLInputElement>("scrub");
  scrub.addEventListener("input", () => {
    playing = false;
    $("play").textContent = "▶ play";
    seekTarget = Number(scrub.value);
  });
  $<HTMLSelectElement>("speed").addEventListener("change", (e) => {
    speed = Number((e.target as HTMLSelectElement).value);
  });
  $<HTMLSelectElement>("tcpdump-iface").addEventListener("change", (e) => {
    tcpdumpIface = (e.target as HTMLSelectElement).value;
    renderTcpdump();
  });
  let filterTimer = 0;
  $<HTMLInputElement>("tcpdump-filter").addEventListener("input", (e) => {
    const v = (e.target as HTMLInputElement).value;
    clearTimeout(filterTimer);
    filterTimer = window.setTimeout(() => {
      tcpdumpFilter = v;
      renderTcpdump();
    }, 200);
  });
  $("pcap-download").addEventListener("click", () => {
    if (!tl) return;
    try {
      download(tl.pcap(tcpdumpIface, T), `${tcpdumpIface.replace(/\//g, "_")}.pcap`);
    } catch (e) {
      const err = $("tcpdump-error");
      err.hidden = false;
      err.textContent = errorText(e);
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLInputElement) return;
    if (e.key === " ") {
      e.preventDefault();
      togglePlay();
    } else if (e.key === "ArrowRight") stepForward();
    else if (e.key === "ArrowLeft") stepBack();
  });
}

async function main(): Promise<void> {
  const wasm = await init();
  (window as unknown as { podnetMemory: () => number }).podnetMemory = () => wasm.memory.buffer.byteLength;
  $("version").textContent = `podnet ${version()}`;
  bundled = examples();
  const exSel = $<HTMLSelectElement>("example-select");
  exSel.replaceChildren(...bundled.map((e) => {
    const o = h("option", { text: `${e.name}: ${e.title}` });
    o.value = e.name;
    return o;
  }));
  const lSel = $<HTMLSelectElement>("lesson-select");
  for (const l of LESSONS) {
    const o = h("option", { text: l.title });
    o.value = l.id;
    lSel.append(o);
  }
  wire();
  const params = new URLSearchParams(location.search);
  const first = params.get("example") ?? (bundled.some((e) => e.name === "seed") ? "seed" : bundled[0]?.name);
  if (first) loadExample(first);
  const lessonId = params.get("lesson");
  if (lessonId) {
    lSel.value = lessonId;
    startLesson(lessonId);
  }
  document.body.dataset.ready = "true";
  requestAnimationFrame(frame);
}

main().catch((e: unknown) => {
  setStatus(`could not start: ${errorText(e)}`, "error");
  console.error(e);
});
