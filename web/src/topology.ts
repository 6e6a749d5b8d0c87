// The cluster drawn as SVG from sim.topology(): nodes as boxes holding their pods, each
// node's bridge (cni0) and uplink (eth0), the underlay switch, the edge router with the
// external hosts behind it, and the Services as virtual IPs above the nodes.
import type { Topology } from "./podnet";

const SVG_NS = "http://www.w3.org/2000/svg";

export interface Point {
  x: number;
  y: number;
}

const POD_W = 104;
const POD_H = 44;
const POD_GAP = 10;
const PODS_PER_ROW = 5;
const NODE_PAD = 14;
const TOP = 78; // below the Services row

export function svgEl<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  text?: string,
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

type NodeInfo = Topology["nodes"][number];
type Link = Topology["links"][number];

/**
 * The nodes and links to draw. When the module lists external hosts but not the edge router
 * they sit behind, the router is added from the links (the host at the far end of an external
 * host's eth0), and every node's uplink gets its wire to the underlay switch
 * (`N/eth0` - `underlay/N`, the engine's names) when the list lacks it.
 */
export function drawnTopology(topo: Topology): { nodes: NodeInfo[]; links: Link[] } {
  const nodes = [...topo.nodes];
  const links = [...topo.links];
  const externals = new Set(topo.externals.map((e) => e.name));
  const hostOf = (iface: string): string => iface.slice(0, iface.indexOf("/"));
  if (externals.size > 0 && !nodes.some((n) => n.role === "edge")) {
    const behind = new Map<string, { pods: string[]; ifaces: string[] }>();
    for (const l of topo.links) {
      for (const [mine, other] of [
        [l.a, l.b],
        [l.b, l.a],
      ] as const) {
        if (!externals.has(hostOf(mine))) continue;
        const router = hostOf(other);
        const entry = behind.get(router) ?? { pods: [], ifaces: [] };
        entry.pods.push(hostOf(mine));
        entry.ifaces.push(other);
        behind.set(router, entry);
      }
    }
    for (const [name, { pods, ifaces }] of behind) {
      nodes.push({ name, ip: "", podCidr: "", role: "edge", interfaces: [`${name}/cni0`, `${name}/eth0`, ...ifaces], pods });
    }
  }
  const linked = new Set(links.flatMap((l) => [l.a, l.b]));
  for (const n of nodes) {
    const up = `${n.name}/eth0`;
    if (!linked.has(up)) links.push({ a: up, b: `underlay/${n.name}` });
  }
  return { nodes, links };
}

export class TopologyView {
  readonly width: number;
  readonly height: number;
  private ifaces = new Map<string, Point>();
  private hostPos = new Map<string, Point>();
  private center: Point;
  /** Pod box height (taller when pods show their security identity). */
  private podH = POD_H;

  constructor(
    readonly topo: Topology,
    private readonly root: SVGGElement,
  ) {
    const drawn = drawnTopology(topo);
    const peer = new Map<string, string>();
    for (const l of drawn.links) {
      peer.set(l.a, l.b);
      peer.set(l.b, l.a);
    }
    const podIp = new Map<string, string>();
    for (const p of topo.pods) podIp.set(p.name, p.ip);
    // Cilium policies: each pod shows its security identity, its labels in a tooltip.
    const identity = new Map<string, { id: number; labels: string }>();
    for (const p of topo.pods) {
      if (p.identity === null || p.identity === undefined) continue;
      const labels = Object.entries(p.labels).map(([k, v]) => `k8s:${k}=${v}`);
      labels.push(`k8s:io.kubernetes.pod.namespace=${p.namespace}`);
      identity.set(p.name, { id: p.identity, labels: labels.join(", ") });
    }
    const podH = identity.size > 0 ? POD_H + 14 : POD_H;
    this.podH = podH;
    for (const e of topo.externals) podIp.set(e.name, e.ip);

    // Nodes first, the edge router last.
    const nodes = drawn.nodes.sort((a, b) => (a.role === b.role ? 0 : a.role === "edge" ? 1 : -1));
    let x = 20;
    let maxBottom = TOP;
    const placed: { name: string; x: number; w: number; eth0: Point; bottom: number }[] = [];
    for (const node of nodes) {
      const pods = node.pods;
      const perRow = Math.max(1, Math.min(PODS_PER_ROW, pods.length));
      const rows = Math.max(1, Math.ceil(pods.length / PODS_PER_ROW));
      const w = Math.max(200, perRow * (POD_W + POD_GAP) - POD_GAP + 2 * NODE_PAD);
      const podsTop = TOP + 44;
      const bridgeY = podsTop + rows * (podH + POD_GAP) + 34;
      const eth0Y = bridgeY + 62;
      const h = eth0Y + 30 - TOP;
      const isEdge = node.role === "edge";
      const g = svgEl("g", { class: `node${isEdge ? " edge" : ""}`, "data-node": node.name, "data-testid": `node-${node.name}` });
      g.append(
        svgEl("rect", { x, y: TOP, width: w, height: h, rx: 10, class: "node-box" }),
        svgEl("text", { x: x + 10, y: TOP + 18, class: "node-title" }, isEdge ? `${node.name} (edge router)` : node.name),
        svgEl("text", { x: x + 10, y: TOP + 33, class: "node-sub" }, isEdge ? `${node.ip} external hosts` : `${node.ip} · pods ${node.podCidr}`),
      );
      // Pods.
      const podPos = new Map<string, Point>();
      pods.forEach((name, i) => {
        const row = Math.floor(i / PODS_PER_ROW);
        const col = i % PODS_PER_ROW;
        const inRow = Math.min(PODS_PER_ROW, pods.length - row * PODS_PER_ROW);
        const rowW = inRow * (POD_W + POD_GAP) - POD_GAP;
        const px = x + (w - rowW) / 2 + col * (POD_W + POD_GAP);
        const py = podsTop + row * (podH + POD_GAP);
        const external = topo.externals.some((e) => e.name === name);
        const pg = svgEl("g", { class: `pod${external ? " external" : ""}`, "data-pod": name });
        pg.append(
          svgEl("rect", { x: px, y: py, width: POD_W, height: podH, rx: 6 }),
          svgEl("text", { x: px + POD_W / 2, y: py + 18, "text-anchor": "middle", class: "pod-name" }, name),
          svgEl("text", { x: px + POD_W / 2, y: py + 34, "text-anchor": "middle", class: "pod-ip" }, podIp.get(name) ?? ""),
        );
        const ident = identity.get(name);
        if (ident) {
          const t = svgEl("text", { x: px + POD_W / 2, y: py + 48, "text-anchor": "middle", class: "pod-identity", "data-testid": "pod-identity" }, `identity ${ident.id}`);
          pg.append(t, svgEl("title", {}, `security identity ${ident.id}: ${ident.labels}`));
        }
        g.append(pg);
        const p = { x: px + POD_W / 2, y: py + podH };
        podPos.set(name, p);
        this.hostPos.set(name, p);
      });
      // Bridge and uplink.
      const bw = Math.min(w - 2 * NODE_PAD, Math.max(120, perRow * (POD_W + POD_GAP)));
      const bx = x + (w - bw) / 2;
      g.append(
        svgEl("rect", { x: bx, y: bridgeY, width: bw, height: 24, rx: 4, class: "bridge" }),
        svgEl("text", { x: x + w / 2, y: bridgeY + 16, "text-anchor": "middle", class: "dev-label" }, "cni0 (bridge)"),
      );
      const eth0: Point = { x: x + w / 2, y: eth0Y + 12 };
      g.append(
        svgEl("rect", { x: eth0.x - 60, y: eth0Y, width: 120, height: 24, rx: 4, class: "uplink" }),
        svgEl("text", { x: eth0.x, y: eth0Y + 16, "text-anchor": "middle", class: "dev-label" }, "eth0 (uplink)"),
        svgEl("line", { x1: eth0.x, y1: bridgeY + 24, x2: eth0.x, y2: eth0Y, class: "wire" }),
      );
      // Interfaces of this node.
      for (const iface of node.interfaces) {
        const full = iface.includes("/") ? iface : `${node.name}/${iface}`;
        const dev = full.slice(full.indexOf("/") + 1);
        let p: Point;
        if (dev === "eth0") p = eth0;
        else if (dev === "cni0") p = { x: x + w / 2, y: bridgeY + 12 };
        else if (dev.startsWith("veth")) {
          const other = peer.get(full);
          const pod = other ? podPos.get(other.slice(0, other.indexOf("/"))) : undefined;
          p = pod ? { x: pod.x, y: bridgeY } : { x: x + w / 2, y: bridgeY };
        } else p = { x: x + w / 2 + 40, y: (bridgeY + eth0Y) / 2 + 12 };
        this.ifaces.set(full, p);
      }
      // Wires from each pod to the bridge.
      for (const p of podPos.values()) {
        g.append(svgEl("line", { x1: p.x, y1: p.y, x2: p.x, y2: bridgeY, class: "wire" }));
      }
      this.hostPos.set(node.name, { x: x + w / 2, y: bridgeY + 12 });
      this.root.append(g);
      placed.push({ name: node.name, x, w, eth0, bottom: TOP + h });
      maxBottom = Math.max(maxBottom, TOP + h);
      x += w + 30;
    }
    // Underlay switch.
    const swY = maxBottom + 50;
    if (placed.length > 0) {
      const first = placed[0]!;
      const last = placed[placed.length - 1]!;
      const sw = svgEl("g", { class: "switch", "data-testid": "underlay" });
      sw.append(
        svgEl("rect", { x: first.eth0.x - 40, y: swY, width: last.eth0.x - first.eth0.x + 80, height: 22, rx: 4 }),
        svgEl("text", { x: first.eth0.x - 32, y: swY + 15, class: "dev-label" }, "underlay switch"),
      );
      for (const n of placed) {
        sw.append(svgEl("line", { x1: n.eth0.x, y1: n.eth0.y + 12, x2: n.eth0.x, y2: swY, class: "wire" }));
        this.ifaces.set(`underlay/${n.name}`, { x: n.eth0.x, y: swY + 11 });
      }
      this.root.append(sw);
      this.hostPos.set("underlay", { x: (first.eth0.x + last.eth0.x) / 2, y: swY + 11 });
    }
    // Services as virtual IPs.
    const podCenter = (name: string): Point | undefined => {
      const p = this.hostPos.get(name);
      return p ? { x: p.x, y: p.y - this.podH } : undefined;
    };
    let sx = 20;
    const svcs = svgEl("g", { class: "services" });
    for (const svc of topo.services.slice(0, 12)) {
      const port = svc.ports[0];
      const backends =
        svc.backends.length === 0
          ? "no endpoints"
          : svc.backends.length <= 2
            ? svc.backends.map((b) => `${podIp.get(b) ?? b}${port ? `:${port.targetPort}` : ""}`).join(", ")
            : `${svc.backends.length} backends`;
      const label = `${svc.name} ${svc.clusterIp}${port ? `:${port.port}` : ""}${port?.nodePort ? ` (node :${port.nodePort})` : ""} → ${backends}`;
      const w = Math.max(150, label.length * 6.6 + 20);
      const sg = svgEl("g", { class: "service", "data-service": svc.name, "data-testid": `service-${svc.name}` });
      sg.append(
        svgEl("rect", { x: sx, y: 12, width: w, height: 30, rx: 15 }),
        svgEl("text", { x: sx + w / 2, y: 31, "text-anchor": "middle" }, label),
      );
      const title = svgEl("title");
      title.textContent = `Service ${svc.namespace}/${svc.name}: virtual IP ${svc.clusterIp}; ${svc.ports
        .map((p) => `${p.port}/${p.protocol} -> ${p.targetPort}${p.nodePort ? ` nodePort ${p.nodePort}` : ""}`)
        .join(", ")}; backends ${svc.backends.join(", ") || "none"}`;
      sg.append(title);
      for (const b of svc.backends) {
        const bp = podCenter(b);
        if (bp) sg.append(svgEl("line", { x1: sx + w / 2, y1: 42, x2: bp.x, y2: bp.y, class: "svc-link" }));
      }
      svcs.append(sg);
      sx += w + 12;
    }
    this.root.prepend(svcs);
    this.width = Math.max(x, sx) + 10;
    this.height = swY + 40;
    this.center = { x: this.width / 2, y: this.height / 2 };
  }

  /** Where an interface ("node-a/eth0", "pod-a/eth0", "underlay/node-a") is drawn. */
  pos(iface: string): Point {
    const known = this.ifaces.get(iface);
    if (known) return known;
    const host = iface.slice(0, iface.indexOf("/"));
    const p = this.hostPos.get(host) ?? this.center;
    this.ifaces.set(iface, p);
    return p;
  }
}
