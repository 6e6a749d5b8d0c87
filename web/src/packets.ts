// Which frames are on a wire at a virtual time, and where: each frame `sent` on one end of a
// link is paired with the `received` of the same frame on the other end; between the two
// times it is drawn along the line between the two interfaces.
import type { PacketInfo, SimEvent } from "./podnet";
import type { Timeline } from "./store";

/** Longest time a frame is looked for on a wire (queueing included). */
export const MAX_FLIGHT_US = 10_000;
/** At most this many trace events on each side of the time shown are paired (dense runs). */
export const MAX_WINDOW_EVENTS = 4_000;

export interface Flight {
  sent: SimEvent;
  recv: SimEvent;
}

/** What stays the same about a packet from hop to hop (NAT rewrites only addresses). */
export function packetKey(p: PacketInfo): string {
  const inner = p.vxlan ?? p;
  const line = inner.line;
  const colon = line.indexOf(": ");
  return `${inner.proto}|${inner.flags ?? ""}|${inner.len}|${colon >= 0 ? line.slice(colon + 2) : line}`;
}

function frameKey(iface: string, p: PacketInfo): string {
  return `${iface}\u0000${p.line}\u0000${p.len}`;
}

export class FlightTracker {
  private peer = new Map<string, string>();

  constructor(links: { a: string; b: string }[]) {
    for (const l of links) {
      this.peer.set(l.a, l.b);
      this.peer.set(l.b, l.a);
    }
  }

  private cache: { from: number; to: number; flights: Flight[]; drops: SimEvent[] } | null = null;
  private epoch = 0;

  /** Forget what was computed (a new trace). */
  reset(): void {
    this.cache = null;
  }

  /** Frames in flight at `t` plus the drops in (t - dropWindow, t]. */
  at(tl: Timeline, t: number, dropWindow: number): { flights: Flight[]; drops: SimEvent[] } {
    if (tl.epoch !== this.epoch) this.reset(); // a new recording: indices start over
    this.epoch = tl.epoch;
    const to = tl.countAt(t); // events with time <= t
    const from = Math.max(tl.countAt(Math.max(-1, t - MAX_FLIGHT_US)), to - MAX_WINDOW_EVENTS);
    // Between two events the same frames are on the wires: only their positions move.
    if (!this.cache || this.cache.from !== from || this.cache.to !== to) {
      this.cache = { from, to, ...this.compute(tl, from, to) };
    }
    const drops = this.cache.drops.filter((d) => d.time > t - dropWindow);
    return { flights: this.cache.flights, drops };
  }

  private compute(tl: Timeline, from: number, to: number): { flights: Flight[]; drops: SimEvent[] } {
    const evs = tl.known(from, to);
    const open = new Map<string, SimEvent[]>();
    const drops: SimEvent[] = [];
    for (const e of evs) {
      if (e.kind === "sent") {
        const other = this.peer.get(e.iface);
        if (!other) continue;
        const k = frameKey(other, e.packet);
        const q = open.get(k);
        if (q) q.push(e);
        else open.set(k, [e]);
      } else if (e.kind === "received") {
        const q = open.get(frameKey(e.iface, e.packet));
        if (q && q.length > 0) q.shift();
      } else if (e.kind === "dropped") {
        drops.push(e);
      }
    }
    // What is still open was sent but not yet received: find its receive ahead.
    let count = 0;
    for (const q of open.values()) count += q.length;
    const flights: Flight[] = [];
    if (count === 0) return { flights, drops };
    const last = to > 0 ? tl.event(to - 1) : null;
    // Only what `ahead` already ran (a seek keeps it far enough): drawing never runs it.
    const after = tl.known(to, Math.min(tl.countAtKnown((last?.time ?? 0) + MAX_FLIGHT_US), to + MAX_WINDOW_EVENTS));
    for (const e of after) {
      if (e.kind !== "received") continue;
      const q = open.get(frameKey(e.iface, e.packet));
      if (!q || q.length === 0) continue;
      flights.push({ sent: q.shift()!, recv: e });
      if (--count === 0) break;
    }
    return { flights, drops };
  }
}
