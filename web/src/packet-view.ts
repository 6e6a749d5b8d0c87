// The packet panel: the selected packet hop by hop, each rewrite before -> after with the
// changed fields marked, the hooks' notes, and the whole connection on demand.
import { $, errorText, fmtTime, h } from "./dom";
import { dstOf, srcOf } from "./lesson-types";
import type { PacketInfo, SimEvent } from "./podnet";
import { RULE_NOTE, select } from "./selection";
import { app } from "./state";

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

/** A VXLAN packet: the outer header (node to node, UDP) beside the inner one (the pod's). */
function encapsulated(outer: PacketInfo, inner: PacketInfo, first: PacketInfo): HTMLElement {
  const side = (label: string, testid: string, ...body: (Node | string)[]): HTMLElement =>
    h("div", { class: `encap-${label}`, testid }, h("div", { class: "encap-label", text: label }), ...body);
  return h(
    "div",
    { class: "encap" },
    side("outer", "hop-outer", `${srcOf(outer)} → ${dstOf(outer)}`, h("div", { class: "hint", text: `${outer.proto.toUpperCase()} (VXLAN)` })),
    side("inner", "hop-inner", headerSpan(inner, first), h("div", { class: "hint", text: `${inner.proto.toUpperCase()} ${inner.flags ?? ""}` })),
  );
}

function where(e: SimEvent): string {
  if (e.kind === "hook") return `${e.host} ${e.hook ?? ""}`;
  return e.iface;
}

export function renderPacket(): void {
  const body = $("packet-body");
  if (!app.selected) {
    body.replaceChildren(h("p", { class: "hint", text: "No packet selected: click a moving packet or an event." }));
    return;
  }
  const { event: e, journey, conn, connEvents } = app.selected;
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
    if (x.time > app.T) tr.classList.add("future");
    const hdr = h("td", { class: "mono" });
    if (x.after) {
      const rw = h("span", { class: "rewrite", testid: "hop-rewrite" });
      rw.append(
        h("span", { class: "before", text: `${srcOf(x.packet)} → ${dstOf(x.packet)}` }),
        "  ⇒  ",
        h("span", { class: "after" }, headerSpan(x.after, x.packet)),
      );
      hdr.append(rw);
    } else if (x.packet.vxlan) {
      hdr.append(encapsulated(x.packet, x.packet.vxlan, first));
    } else {
      hdr.append(headerSpan(x.packet, first));
    }
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
      const nr = h("tr", { class: `notes-row${x.index === e.index ? " current" : ""}${x.time > app.T ? " future" : ""}` }, notes);
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
    if (conn && app.tl) {
      try {
        rest.append(h("h3", { text: `podnet trace --flow ${conn.flow} --conn ${conn.id} (up to the time shown)` }));
        rest.append(h("pre", { class: "mono trace", text: app.tl.traceText(conn.flow, conn.id) }));
      } catch (err) {
        rest.append(h("div", { class: "error", text: errorText(err) }));
      }
    }
  });
  body.replaceChildren(head, table, rest);
  showCurrentHop();
}

/** Scroll the packet panel to the selected hop (.packet-body is the rows' offsetParent). */
export function showCurrentHop(): void {
  const body = $("packet-body");
  const current = body.querySelector<HTMLElement>("tr.current");
  if (current && (current.offsetTop < body.scrollTop || current.offsetTop + current.offsetHeight > body.scrollTop + body.clientHeight)) {
    body.scrollTop = Math.max(0, current.offsetTop - 60);
  }
}
