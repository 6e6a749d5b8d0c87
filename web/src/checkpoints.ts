// Parked simulations ("checkpoints") of a long run, so that going back in time re-runs from a
// moment shortly before the target instead of from time 0.
//
// A smoltcp socket cannot be copied, so neither can a Sim: a checkpoint is a whole Sim of the
// same scenario, unrecorded, stopped at its slot's virtual time. The slots are spaced by wall
// cost (measured while the scout ran to the end), so that each gap costs about the same to
// re-run. A seek takes the latest parked Sim at or before its target (it is consumed: it runs
// on and becomes `view` or `ahead`); Sims the timeline lets go (the old `view`, the old `ahead`,
// a re-run dropped half-way) fill an empty slot they happen to fall in. Empty slots are filled
// again in the background, one at a time and highest first, by running the parked Sim just
// below up to the empty slot (the empty slot moves down, one gap at a time, until a new Sim
// from time 0 fills the lowest): only one gap is ever missing at once, for the cost of one gap.
// The Sim on its way to a slot can be taken by a seek as well.
import { Sim } from "./podnet";
import { firstIndex } from "./profile";

/** At most this many parked Sims by cost (each holds the world's state at its time: ~15 MiB
 * for three-endpoints at 30,000 connections early in the run, mostly its open sockets'
 * buffers, ~33 MiB late, with every connection's record). Seven, with that run's cost split
 * between its first 0.2 s and its last 0.33 s, put three of the big late ones in its final
 * burst: the page then peaked at 467 to 471 MiB of wasm memory in the e2e test, against 433
 * to 435 with six, for landings no faster. */
export const MAX_CHECKPOINTS = 6;
/** Runs that cost the scout less than this (wall ms) to run to the end get no checkpoints. A
 * landing costs more than the scout's time for the same stretch (it records the last of it,
 * and the page reads the moment): three-endpoints at 30,000 connections, whose scout run
 * took 0.9 s once the engine got faster, landed in up to 2.1 s from time 0 when `view` and
 * `ahead` both re-ran it. */
export const MIN_RUN_MS = 300;
/** Aimed-for wall cost of the gap between two checkpoints (fewer, wider gaps past MAX). It
 * was 120 ms: when the engine got twice as fast for three-endpoints at 30,000 connections
 * (sockets served only when busy) the scout took half the time, and 120 ms gaps left it
 * four slots by cost where memory allowed seven (six since), and landings no faster. */
export const GAP_MS = 60;
/** Besides those, no stretch longer than this share of the run's virtual time is left without
 * a slot (at most MAX_SPAN_CHECKPOINTS more): a run's cost is often all in its first moments
 * (three-endpoints' 30,000 connections: the first 0.2 s of 120 s), while the timeline, and
 * the scrubs, span all of it, and re-running a quiet minute still takes a few hundred ms.
 * A slot late in a run is not small (it holds every connection's record so far: about
 * 33 MiB for three-endpoints at 30,000 connections), hence only two, and one slot by cost
 * fewer: together they stay within 512 MiB of wasm memory. */
export const MAX_SPAN = 1 / 3;
export const MAX_SPAN_CHECKPOINTS = 2;

/** `times` (ascending, in (0, end)) with slots added, evenly in each gap between 0, them and
 * `end` that is longer than MAX_SPAN of `end`, the first MAX_SPAN_CHECKPOINTS of them. */
function withSpanSlots(times: readonly number[], end: number): number[] {
  const span = end * MAX_SPAN;
  const bounds = [0, ...times, end];
  const extra: number[] = [];
  for (let j = 0; j + 1 < bounds.length; j++) {
    const a = bounds[j] ?? 0;
    const b = bounds[j + 1] ?? end;
    const n = Math.ceil((b - a) / span) - 1;
    for (let m = 1; m <= n; m++) extra.push(Math.floor(a + (m * (b - a)) / (n + 1)));
  }
  const all = [...times, ...extra.slice(0, MAX_SPAN_CHECKPOINTS)].sort((x, y) => x - y);
  return all.filter((t, i) => t > 0 && t < end && t !== all[i - 1]);
}

export class Checkpoints {
  private readonly yaml: string;
  /** Each slot's virtual time (µs), ascending, all > 0. */
  private times: number[] = [];
  private parked: (Sim | null)[] = [];
  /** The scout's cost profile (virtual µs, wall ms since 0), and one gap's wall cost (ms). */
  private profile: [number, number][] = [];
  private gapMs = 0;
  /** The Sim running to an empty slot in the background. */
  private builder: { sim: Sim; slot: number } | null = null;
  /** Virtual µs the builder runs per call (adapts to the scenario). */
  private chunk = 100;

  /** The window of events a parked Sim keeps once it records (it may become `ahead`). */
  private readonly windowEvents: number;

  constructor(yaml: string, windowEvents: number) {
    this.yaml = yaml;
    this.windowEvents = windowEvents;
  }

  /**
   * Choose the slots from the scout's cost profile: `profile` holds (virtual µs, wall ms spent
   * since time 0), ascending. `count` forces that many slots (the page's `?checkpoints=N`);
   * else there are none below MIN_RUN_MS, and one per GAP_MS of cost up to MAX_CHECKPOINTS,
   * plus slots in virtual time where the others leave more than MAX_SPAN of the run without
   * one (see MAX_SPAN).
   */
  plan(profile: [number, number][], count?: number): void {
    this.free();
    this.times = [];
    const [end, total] = profile[profile.length - 1] ?? [0, 0];
    const k = count ?? (total < MIN_RUN_MS ? 0 : Math.min(MAX_CHECKPOINTS, Math.floor(total / GAP_MS)));
    this.profile = profile;
    this.gapMs = total / (k + 1);
    let at = 0;
    for (let i = 1; i <= k; i++) {
      const want = (i * total) / (k + 1);
      while (at < profile.length - 1 && (profile[at]?.[1] ?? 0) < want) at++;
      const t = Math.floor(profile[at]?.[0] ?? 0);
      if (t > (this.times[this.times.length - 1] ?? 0) && t < end) this.times.push(t);
    }
    if (count === undefined && k > 0) this.times = withSpanSlots(this.times, end);
    this.parked = this.times.map(() => null);
  }

  /** Slots filled, and slots in all. */
  filled(): [number, number] {
    return [this.times.filter((_, i) => !this.needs(i)).length, this.times.length];
  }

  /** Slot times (virtual µs). */
  slots(): readonly number[] {
    return this.times;
  }

  /** Take the parked (or on its way) Sim latest at or before `t` and later than `after`;
   * null when there is none. */
  take(t: number, after = -1): Sim | null {
    let best = -1;
    let bestNow = after;
    this.parked.forEach((s, i) => {
      const now = s?.now() ?? Infinity;
      if (now <= t && now > bestNow) (best = i), (bestNow = now);
    });
    const b = this.builder;
    if (b && b.sim.now() <= t && b.sim.now() > bestNow) {
      this.builder = null;
      return b.sim;
    }
    if (best < 0) return null;
    const s = this.parked[best] ?? null;
    this.parked[best] = null;
    return s;
  }

  /** A Sim the timeline lets go (not recording): parked in the slot it falls in (the last
   * one whose time is at or before its own) when that slot is empty or held by a later Sim
   * (the later one goes); freed otherwise. Parked late in its slot it still serves every
   * moment after it, and a seek that used a slot up often gives one back this way. */
  give(sim: Sim): void {
    const now = sim.now();
    let i = this.times.length - 1;
    while (i >= 0 && (this.times[i] ?? 0) > now) i--;
    const held = i >= 0 ? this.parked[i] : undefined;
    if (held === null || (held && held.now() > now)) {
      held?.free();
      this.parked[i] = sim;
    } else {
      sim.free();
    }
  }

  /** Fill the slots that need a Sim for at most `budgetMs`; true when none does. */
  fill(budgetMs: number): boolean {
    const start = performance.now();
    while (performance.now() - start < budgetMs) {
      let b = this.builder;
      if (b && !this.needs(b.slot)) {
        // Its slot was filled meanwhile: on to the highest empty slot after it, if any.
        const slot = this.highestNeeding(b.sim.now());
        if (slot < 0) {
          this.builder = null;
          this.give(b.sim);
          continue;
        }
        b.slot = slot;
      }
      if (!b) {
        const slot = this.highestNeeding(0);
        if (slot < 0) return true;
        // From the parked Sim just below (that slot empties in turn), else from time 0.
        let below = slot - 1;
        while (below >= 0 && this.parked[below] === null) below--;
        let sim: Sim;
        if (below >= 0) {
          sim = this.parked[below] as Sim;
          this.parked[below] = null;
        } else {
          sim = new Sim(this.yaml, { record: false, windowEvents: this.windowEvents });
        }
        b = this.builder = { sim, slot };
        this.chunk = 100;
      }
      const target = this.times[b.slot] ?? 0;
      if (b.sim.now() >= target) {
        this.builder = null;
        this.give(b.sim);
        continue;
      }
      const t0 = performance.now();
      b.sim.runUntil(Math.min(target, b.sim.now() + this.chunk));
      const took = performance.now() - t0;
      if (took < 1) this.chunk = Math.min(this.chunk * 2, 10_000_000);
      else if (took > 6) this.chunk = Math.max(this.chunk / 2, 20);
    }
    return this.highestNeeding(0) < 0 && this.builder === null;
  }

  /** The highest slot that needs a Sim (see `needs`) whose time is at or after `from`, or -1. */
  private highestNeeding(from: number): number {
    for (let i = this.times.length - 1; i >= 0 && (this.times[i] ?? 0) >= from; i--) {
      if (this.needs(i)) return i;
    }
    return -1;
  }

  /** Whether slot `i` is empty, or held by a Sim let go late in it (more than a quarter gap's
   * cost after its time): that one serves the moments after it until the background work
   * parks one at the slot's time in its place. */
  private needs(i: number): boolean {
    const s = this.parked[i];
    if (s === undefined) return false;
    if (s === null) return true;
    return this.costAt(s.now()) - this.costAt(this.times[i] ?? 0) > this.gapMs / 4;
  }

  /** Wall ms the scout took to reach virtual time `t`. */
  private costAt(t: number): number {
    const p = this.profile;
    return p[firstIndex(p, (e) => e[0] >= t)]?.[1] ?? p[p.length - 1]?.[1] ?? 0;
  }

  /** Free every parked Sim (the slots stay, empty). */
  free(): void {
    for (const s of this.parked) s?.free();
    this.parked = this.parked.map(() => null);
    this.builder?.sim.free();
    this.builder = null;
  }
}
