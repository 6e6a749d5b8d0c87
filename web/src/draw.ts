// Packets drawn on a canvas over the SVG topology (hundreds of moving SVG nodes are slow to
// repaint); the static cluster and the drop marks stay SVG.
import { $ } from "./dom";
import type { PacketInfo } from "./podnet";
import { select } from "./selection";
import { app } from "./state";
import { svgEl } from "./topology";

export const svg = $("topology") as unknown as SVGSVGElement;
export const gStatic = $("topo-static") as unknown as SVGGElement;
export const gDrops = $("topo-drops") as unknown as SVGGElement;
export const canvas = $<HTMLCanvasElement>("packets");
const ctx2d = canvas.getContext("2d")!;

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
  return app.topoView ? (w * dpr) / app.topoView.width : 1;
}

export function drawPackets(): void {
  if (!app.tl || !app.topoView || !app.flights) return;
  const { flights: fl, drops } = app.flights.at(app.tl, app.T, Math.max(app.speed * 0.8, 1));
  app.inFlight = fl.length;
  const scale = canvasScale();
  ctx2d.setTransform(1, 0, 0, 1, 0, 0);
  ctx2d.clearRect(0, 0, canvas.width, canvas.height);
  ctx2d.setTransform(scale, 0, 0, scale, 0, 0);
  const selIndices = new Set(app.selected?.journey.map((e) => e.index) ?? []);
  const next: typeof drawn = [];
  const byColor = new Map<string, { x: number; y: number }[]>();
  const sel: { x: number; y: number }[] = [];
  for (const f of fl) {
    const a = app.topoView.pos(f.from);
    const b = app.topoView.pos(f.to);
    const span = f.receivedTime - f.sentTime;
    const k = span > 0 ? (app.T - f.sentTime) / span : 1;
    const x = a.x + (b.x - a.x) * k;
    const y = a.y + (b.y - a.y) * k;
    next.push({ x, y, index: f.sent, label: `${f.from} → ${f.to}: ${f.packet.line}` });
    if (selIndices.has(f.sent) || (f.received != null && selIndices.has(f.received))) sel.push({ x, y });
    const color = COLORS[packetKind(f.packet)] ?? "#444";
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
    $("in-flight").textContent = String(app.inFlight);
    return;
  }
  gDrops.dataset.key = dropKey;
  dropMarks = drops.slice(-30).map((d) => {
    const p = app.topoView!.pos(d.iface);
    return { x: p.x, y: p.y, index: d.index, label: `dropped at ${d.iface}: ${d.reason ?? ""}` };
  });
  gDrops.replaceChildren(
    ...drops.slice(-30).map((d) => {
      const p = app.topoView!.pos(d.iface);
      const g = svgEl("g", { class: "drop", "data-index": d.index });
      g.append(
        svgEl("path", { d: `M${p.x - 7} ${p.y - 7} L${p.x + 7} ${p.y + 7} M${p.x + 7} ${p.y - 7} L${p.x - 7} ${p.y + 7}` }),
        svgEl("title", {}, `dropped at ${d.iface}: ${d.reason ?? ""}`),
      );
      g.addEventListener("click", () => select(d.index));
      return g;
    }),
  );
  $("in-flight").textContent = String(app.inFlight);
}

/** The packet drawn nearest to a mouse position (within 12 px), if any. */
export function packetAt(ev: MouseEvent): (typeof drawn)[number] | null {
  if (!app.topoView) return null;
  const r = canvas.getBoundingClientRect();
  const k = app.topoView.width / r.width;
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
  if (!p || !app.topoView) return null;
  const r = canvas.getBoundingClientRect();
  const k = r.width / app.topoView.width;
  return { x: r.left + p.x * k, y: r.top + p.y * k, index: p.index };
}
(window as unknown as { podnetPacket: typeof packetScreenPos }).podnetPacket = packetScreenPos;