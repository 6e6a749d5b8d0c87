// Which frames are on a wire at a virtual time, and where: each frame `sent` on one end of a
// link is paired (by the module) with the `received` of the same frame on the other end;
// between the two times it is drawn along the line between the two interfaces.
import type { Flight, PacketInfo, SimEvent } from "./podnet";
import type { Timeline } from "./store";

/** Longest time a frame is looked for on a wire (queueing included). */
export const MAX_FLIGHT_US = 10_000;
/** At most this many trace events on each side of the time shown are paired (dense runs). */
export const MAX_WINDOW_EVENTS = 4_000;

export type { Flight };

/** What stays the same about a packet from hop to hop (NAT rewrites only addresses). */
export function packetKey(p: PacketInfo): string {
  const inner = p.vxlan ?? p;
  const line = inner.line;
  const colon = line.indexOf(": ");
  return `${inner.proto}|${inner.flags ?? ""}|${inner.len}|${colon >= 0 ? line.slice(colon + 2) : line}`;
}

/**
 * The frames on the wires at the time shown, as the module pairs them from `ahead`'s kept
 * events (a frame sent on one end of a link, its receipt on the other end still to come),
 * and the latest drops. Between two events the same frames are on the wires (only their
 * positions move): the answer is kept until an event passes or more events are known.
 */
export class FlightTracker {
  private cache: { key: string; flights: Flight[]; drops: SimEvent[] } | null = null;

  /** Forget what was computed (a new trace). */
  reset(): void {
    this.cache = null;
  }

  /** Frames in flight at `t` plus the drops in (t - dropWindow, t]. */
  at(tl: Timeline, t: number, dropWindow: number): { flights: Flight[]; drops: SimEvent[] } {
    const to = tl.countAt(t); // events with time <= t
    const key = `${tl.epoch}:${to}:${tl.knownEvents()}`;
    let c = this.cache;
    if (c?.key !== key) this.cache = c = { key, ...tl.flights(t, MAX_FLIGHT_US, MAX_WINDOW_EVENTS) };
    return { flights: c.flights, drops: c.drops.filter((d) => d.time > t - dropWindow) };
  }
}
