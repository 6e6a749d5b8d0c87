// Time travel by deterministic replay.
//
// Two simulations of the same scenario run side by side:
// - `view` is exactly at the displayed virtual time: the conntrack tables, rules, tcpdump,
//   pcap, report and event count come from it. Going back in time builds a new Sim from the
//   same YAML and runs it to the earlier moment (same seed, same bytes).
// - `ahead` only moves forward, a little in front of the displayed time, so packets sent
//   before the displayed time can be drawn on their way to a receive that has not happened
//   yet in `view`. Its trace is the same trace (determinism), read in cached chunks.
import { Sim } from "./podnet";
import type { SimEvent } from "./podnet";

const CHUNK = 256;
const MAX_CHUNKS = 600; // ~150k events kept in JS at most

/** How far ahead of the displayed time `ahead` runs: long enough for any frame in flight. */
export const LOOKAHEAD_US = 20_000;
/** ...or this many trace events past the displayed time, whichever comes first. */
export const AHEAD_EVENTS = 4_000;
/** The same bound `podnet run` uses when a scenario never finishes. */
export const RUN_LIMIT_US = 120_000_000;

export class Timeline {
  readonly yaml: string;
  view: Sim;
  private ahead: Sim;
  private chunks = new Map<number, SimEvent[]>();
  /** Virtual time at which every client had finished, once `ahead` got there. */
  endTime: number | null = null;
  /** Wall-clock milliseconds spent in the last rebuild (replay). */
  lastReplayMs = 0;
  replays = 0;
  /** A seek in progress: `view` running forward, or a new Sim replaying to an earlier time. */
  private pending: { sim: Sim; target: number; worked: number } | null = null;
  /** Virtual µs a replay runs per call (adapts to the scenario). */
  private replayChunk = 100;

  constructor(yaml: string) {
    this.yaml = yaml;
    this.view = new Sim(yaml);
    this.ahead = new Sim(yaml);
  }

  free(): void {
    this.dropReplay();
    this.view.free();
    this.ahead.free();
    this.chunks.clear();
  }

  /**
   * Bring `view` to virtual time `t`: forward by running it, backward by replaying a new Sim
   * from the start; `ahead` is brought to `t` plus the lookahead on the way. This works for
   * at most `budgetMs` now; when that is not enough it goes on in later calls of
   * continueReplay() (the page stays responsive) and seek returns false until `view` is at `t`.
   */
  seek(time: number, budgetMs = Infinity): boolean {
    // The engine's clock counts whole microseconds (runUntil(250.5) stops at 250).
    const t = Math.floor(time);
    const p = this.pending;
    if (t >= this.view.now()) {
      // Forward: run `view` itself (a replay in progress toward an earlier time is dropped).
      if (p && p.sim !== this.view) this.dropReplay();
      if (this.pending) this.pending.target = t;
      else this.pending = { sim: this.view, target: t, worked: 0 };
    } else if (p && p.sim !== this.view && p.sim.now() <= t) {
      p.target = t;
    } else {
      this.dropReplay();
      this.pending = { sim: new Sim(this.yaml), target: t, worked: 0 };
    }
    // Start each seek with small steps: the last one may have grown them over a quiet stretch.
    this.replayChunk = 100;
    return this.continueReplay(budgetMs);
  }

  /** Work on the seek for at most `budgetMs`; true once `view` is at the target. */
  continueReplay(budgetMs: number): boolean {
    const p = this.pending;
    if (!p) return true;
    const start = performance.now();
    let aheadDone = false;
    for (;;) {
      const simBehind = p.sim.now() < p.target;
      // `ahead` covers the frames in flight: LOOKAHEAD_US, or AHEAD_EVENTS in a dense run.
      const aheadBehind =
        !aheadDone &&
        this.ahead.now() < p.target + LOOKAHEAD_US &&
        (this.ahead.now() <= p.target || this.ahead.eventCount() - this.countAtKnown(p.target) < AHEAD_EVENTS);
      if (!simBehind && !aheadBehind) break;
      if (performance.now() - start >= budgetMs) {
        p.worked += performance.now() - start;
        return false;
      }
      const t0 = performance.now();
      if (simBehind && (!aheadBehind || p.sim.now() <= this.ahead.now())) {
        p.sim.runUntil(Math.min(p.target, p.sim.now() + this.replayChunk));
      } else if (!this.advanceAhead(this.replayChunk)) {
        aheadDone = true;
      }
      const took = performance.now() - t0;
      if (took < 1) this.replayChunk = Math.min(this.replayChunk * 2, 10_000_000);
      else if (took > 6) this.replayChunk = Math.max(this.replayChunk / 2, 20);
    }
    p.worked += performance.now() - start;
    this.pending = null;
    if (p.sim !== this.view) {
      this.view.free();
      this.view = p.sim;
      this.lastReplayMs = p.worked;
      this.replays += 1;
    }
    return true;
  }

  /** The time a seek in progress is heading for, and how far it got (0..1). */
  replaying(): { target: number; done: number; back: boolean } | null {
    const p = this.pending;
    return p ? { target: p.target, done: p.target > 0 ? p.sim.now() / p.target : 1, back: p.sim !== this.view } : null;
  }

  private dropReplay(): void {
    if (this.pending && this.pending.sim !== this.view) this.pending.sim.free();
    this.pending = null;
  }

  /** How far the forward-only simulation has been run (virtual µs). */
  aheadTime(): number {
    return this.ahead.now();
  }

  /** Run `ahead` to at least `t` (bounded by the end of the scenario). */
  ensureAhead(t: number): void {
    while (this.ahead.now() < t) {
      if (!this.advanceAhead(t - this.ahead.now())) return;
    }
  }

  /**
   * Run `ahead` forward by at most `us` of virtual time; notes the end of the scenario when
   * every client has finished. Returns true while there is more to run.
   */
  advanceAhead(us: number): boolean {
    if (this.endTime !== null) {
      // Past the end only the packets still in flight matter.
      const stop = this.endTime + LOOKAHEAD_US;
      if (this.ahead.now() >= stop || this.ahead.nextEventTime() === null) return false;
      this.ahead.runUntil(Math.min(stop, this.ahead.now() + Math.max(1, us)));
      return true;
    }
    const before = this.ahead.now();
    // runToEnd's limit is how much more virtual time to run, at most.
    const done = this.ahead.runToEnd(Math.max(1, Math.min(us, RUN_LIMIT_US - before)));
    const stuck = this.ahead.now() <= before && this.ahead.nextEventTime() === null;
    if (done || stuck || this.ahead.now() >= RUN_LIMIT_US) {
      this.endTime = this.ahead.now();
    }
    return true;
  }

  /** Number of trace events known so far (from `ahead`). */
  knownEvents(): number {
    return this.ahead.eventCount();
  }

  private chunk(c: number): SimEvent[] {
    let evs = this.chunks.get(c);
    if (evs && (evs.length === CHUNK || c * CHUNK + evs.length >= this.ahead.eventCount())) {
      return evs;
    }
    const from = c * CHUNK;
    const to = Math.min(from + CHUNK, this.ahead.eventCount());
    evs = to > from ? this.ahead.events(from, to) : [];
    this.chunks.delete(c);
    this.chunks.set(c, evs);
    if (this.chunks.size > MAX_CHUNKS) {
      const oldest = this.chunks.keys().next().value;
      if (oldest !== undefined) this.chunks.delete(oldest);
    }
    return evs;
  }

  /** Event `i` of the trace (running `ahead` further when needed), or null past the end. */
  event(i: number): SimEvent | null {
    while (i >= this.ahead.eventCount()) {
      if (!this.advanceAhead(LOOKAHEAD_US)) return null;
    }
    return this.chunk(Math.floor(i / CHUNK))[i % CHUNK] ?? null;
  }

  /** Events [from, to) that are already known; does not run the simulation. */
  known(from: number, to: number): SimEvent[] {
    const out: SimEvent[] = [];
    const end = Math.min(to, this.ahead.eventCount());
    for (let i = Math.max(0, from); i < end; ) {
      const c = Math.floor(i / CHUNK);
      const evs = this.chunk(c);
      const stop = Math.min(end, (c + 1) * CHUNK);
      for (; i < stop; i++) {
        const e = evs[i - c * CHUNK];
        if (e) out.push(e);
      }
    }
    return out;
  }

  /** Number of events with time <= t (the index of the first event after t). */
  countAt(t: number): number {
    this.ensureAhead(t + 1);
    return this.countAtKnown(t);
  }

  /** countAt() among the events known so far, without running the simulation. */
  countAtKnown(t: number): number {
    let lo = 0;
    let hi = this.ahead.eventCount();
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.chunk(Math.floor(mid / CHUNK))[mid % CHUNK];
      if (e && e.time <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Time of the first event strictly after `t`, or null at the end. */
  nextTime(t: number): number | null {
    const i = this.countAt(t);
    const e = this.event(i);
    return e ? e.time : null;
  }

  /** Time of the last event strictly before `t`, or 0. */
  prevTime(t: number): number {
    const i = this.countAt(t - 1);
    if (i === 0) return 0;
    const e = this.event(i - 1);
    return e ? e.time : 0;
  }

  /** First event index >= `from` that satisfies `pred`, scanning at most `limit` events. */
  find(pred: (e: SimEvent) => boolean, from = 0, limit = 400_000): SimEvent | null {
    for (let i = from; i < from + limit; i++) {
      const e = this.event(i);
      if (!e) return null;
      if (pred(e)) return e;
    }
    return null;
  }
}
