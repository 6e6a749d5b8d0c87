// Time travel by deterministic replay, with a bounded window of trace events.
//
// Simulations of the same scenario run side by side:
// - `view` is exactly at the displayed virtual time: the conntrack tables, rules, report and
//   frame count come from its state. Going back in time takes a parked Sim (a checkpoint) or
//   builds a new one from the same YAML and re-runs it to the earlier moment (same seed, same
//   bytes).
// - `ahead` keeps a bounded window of trace events (the wasm module lets the oldest go past
//   WINDOW_EVENTS): the event list, tcpdump, the pcap and packet walks read it.
// - After a landing outside `ahead`'s window (a scrub, a step back past it, a jump far
//   forward) they are one Sim: it re-ran unrecorded to a little before the time shown
//   (backUs), recorded from there, and stops at the time shown. The frames drawn in flight
//   then come from its links' queues (Sim.flightsNow), so a landing runs its stretch once.
//   Playing on moves it forward, recording. Only when something needs events past the time
//   shown (a packet's later hops, a lesson looking ahead) does `ahead` become a Sim of its own
//   (split(): a second Sim recording from the same moment, so the events keep their numbers),
//   which then runs a little in front of the time shown; `view` then re-runs unrecorded
//   when the time shown goes back within the window (a step back), and only it.
// - `scout` runs to the end once, unrecorded, so the page knows how long the run is and what
//   each stretch of it costs to re-run; it is freed when done.
// - A long run then gets parked Sims (`Checkpoints`, checkpoints.ts) spread over it by cost:
//   going back (or far forward) starts from the latest one at or before the target instead
//   of from time 0, and Sims let go return there.
// Event indices are those of `ahead`'s current recording: numbered from 0 where it began
// (`epoch` changes when it begins again; cached events and selections are then stale).
import { Checkpoints } from "./checkpoints";
import { firstIndex, lerp } from "./profile";
import { Sim } from "./podnet";
import type { ConntrackHead, Flights, Flow, NodeReport, Report, SimEvent, TcpdumpTail, Topology } from "./podnet";

const CHUNK = 256;
const MAX_CHUNKS = 200; // ~51k events kept in JS at most

/** How far ahead of the displayed time `ahead` runs: long enough for any frame in flight. */
export const LOOKAHEAD_US = 20_000;
/** ...or this many trace events past the displayed time, whichever comes first. */
export const AHEAD_EVENTS = 4_000;
/** The same bound `podnet run` uses when a scenario never finishes. */
export const RUN_LIMIT_US = 120_000_000;
/** The most virtual time (µs), past the next event, that one slice of the scout runs: its
 * slices are the cost profile the checkpoints are planned from, so a slice must not swallow
 * a burst whole. Quiet stretches are skipped whatever their length. */
const EXPLORE_MAX_US = 50_000;
/** Events the wasm module keeps at most (the oldest quarter goes past it). */
export const WINDOW_EVENTS = 50_000;
/** How much virtual time before the displayed time a new recording starts, at most... */
export const BACK_US = 10_000;
/** ...or as far back as about this many frames where the run is dense (recording runs slower
 * than a run unrecorded, and a step back finds thousands of events in that stretch)... */
const BACK_FRAMES = 3_000;
/** ...but never less than this: frames in flight at the time shown were sent in it. */
const MIN_BACK_US = 2_000;
/** Wall ms a checkpoint must save over running on a Sim already there to be used. */
const SAVE_MS = 50;

/** What the panels read of `view` at one moment, read once. */
interface Readouts {
  sim: Sim;
  at: number;
  frames: number;
  report?: Report;
  summary?: string;
  nodes?: NodeReport[];
  flagged?: { denied: Flow[]; forbidden: Flow[] };
}

interface Pending {
  /** The simulation heading for `target` (a new one when going back). */
  sim: Sim;
  target: number;
  worked: number;
  /** The Sim is to run unrecorded to `from`, record from there to `target`, and be both
   * `view` and `ahead` (null: only `view` moves, and `ahead` runs on past `target`). */
  share: { from: number } | null;
  /** Virtual µs to run in all, for the progress shown. */
  total: number;
}

export class Timeline {
  readonly yaml: string;
  private view: Sim;
  private ahead: Sim;
  private scout: Sim | null;
  private chunks = new Map<number, SimEvent[]>();
  /** Changes each time `ahead` starts recording again (event indices start over). */
  epoch = 0;
  /** Virtual time at which every client had finished, once known. */
  endTime: number | null = null;
  /** Wall-clock milliseconds spent in the last rebuild (replay). */
  lastReplayMs = 0;
  replays = 0;
  private pending: Pending | null = null;
  /** Virtual µs a replay runs per call (adapts to the scenario). */
  private replayChunk = 100;
  /** Virtual µs `scout` runs per call (adapts to the scenario). */
  private exploreChunk = 2_000;
  /** The scout's wall cost: (virtual µs, wall ms since time 0), ascending. */
  private profile: [number, number][] = [];
  /** The scout's frames delivered: (virtual µs, frames since time 0), ascending. */
  private frameProfile: [number, number][] = [];
  /** For each sample of `frameProfile`, when the first and the last frame since the sample
   * before it were delivered ([-1, -1]: none was). */
  private frameSpans: [number, number][] = [];
  private ckpt: Checkpoints;
  /** Checkpoints asked for (`?checkpoints=N`), else chosen from the run's cost. */
  private readonly checkpointCount: number | undefined;
  private planned = false;
  private cache: Readouts | null = null;
  /** Virtual time the last seek's run of `view` started from (0: a new Sim). */
  lastFrom = 0;
  /** A step back to before the window (`afterLastFrameBefore`): where it lands, where its
   * recording starts, and, until refineStepBack() found the event, the time before which
   * the event is sought (no event lies between there and the time the step back left). */
  private stepBack: { at: number; from: number; before: number | null } | null = null;

  constructor(yaml: string, options: { checkpoints?: number } = {}) {
    this.yaml = yaml;
    this.checkpointCount = options.checkpoints;
    this.ckpt = new Checkpoints(yaml, WINDOW_EVENTS);
    // One Sim, recording, is `view` and `ahead` until something needs events past the time
    // shown (split()).
    this.view = this.ahead = new Sim(yaml, { windowEvents: WINDOW_EVENTS });
    this.scout = new Sim(yaml, { record: false });
  }

  free(): void {
    this.dropReplay();
    this.ckpt.free();
    if (this.ahead !== this.view) this.ahead.free();
    this.view.free();
    this.scout?.free();
    this.scout = null;
    this.chunks.clear();
  }

  /** A Sim no longer used: to the checkpoints (kept when it fills an empty slot). */
  private release(sim: Sim): void {
    if (sim.recordingSince() !== null) sim.setRecording(false);
    this.ckpt.give(sim);
  }

  /** The earliest time from which `ahead`'s kept events are complete. */
  windowFrom(): number {
    const since = this.ahead.recordingSince() ?? 0;
    const base = this.ahead.eventBase();
    if (base === 0) return since === 0 ? 0 : since + 1;
    const first = this.chunk(Math.floor(base / CHUNK))[base % CHUNK];
    return (first?.time ?? since) + 1;
  }

  /**
   * Bring `view` to virtual time `t`. Where `ahead`'s window holds `t`, `view` runs on (or a
   * Sim re-runs from a checkpoint or time 0, unrecorded) to `t`, and `ahead` runs on to the
   * lookahead past it. Elsewhere (before the window, or far past it) one Sim re-runs,
   * unrecorded to a little before `t` (backUs) and recording from there to `t`, and becomes
   * both `view` and `ahead` (`shared()`): the frames in flight then come from its links'
   * queues, and a second Sim recording from the same moment is built only when something
   * needs events past `t` (split()). This works for at most `budgetMs` now; when that is not
   * enough it goes on in later calls of continueReplay() (the page stays responsive) and
   * seek returns false until `view` is at `t`.
   */
  seek(time: number, budgetMs = Infinity): boolean {
    // The engine's clock counts whole microseconds (runUntil(250.5) stops at 250).
    const t = Math.floor(time);
    const p = this.pending;
    const back = this.backUs(t);
    let from = Math.max(0, t - back);
    // In a quiet stretch, a new recording starts BACK_US before its last frame (crossing a
    // quiet stretch costs nothing): a step back from here then finds that frame in the window,
    // and only `view` re-runs.
    const quiet = this.stepBack?.at === t ? null : this.frameBefore(t);
    if (quiet?.last && quiet.at >= 0 && t - quiet.at > back) from = Math.max(0, Math.min(from, Math.floor(quiet.at) - BACK_US));
    const recording = this.ahead.recordingSince() !== null;
    const wf = this.windowFrom();
    // Before the window, or less than half the usual run-up after its start (frames in flight
    // at `t` may have been sent before it); or far past it. A few steps back after a landing
    // stay in the window and need only `view` re-run.
    // (A shared Sim has no lookahead: it records on up to LOOKAHEAD_US further, as far as
    // `ahead` would have run in front of the time shown, so that playing records every step.)
    const reach = this.ahead.now() + back + (this.shared() ? LOOKAHEAD_US : 0);
    const outside = !recording || (wf > 0 && t < wf + back / 2) || from > reach;
    let sim: Sim | null = null;
    let share: { from: number } | null = null;
    if (outside) {
      const stop = Math.max(0, from - 1);
      if (p?.share && p.share.from <= t - MIN_BACK_US && p.share.from >= from - back && p.sim.now() <= t) {
        // The re-run in progress records from close enough before `t`: it goes on.
        sim = p.sim;
        share = p.share;
      } else {
        // The latest Sim at or before `stop`: one of those running, a checkpoint, else a new one.
        for (const c of [p?.sim, this.view, this.ahead]) if (c && c.now() <= stop && (!sim || c.now() > sim.now())) sim = c;
        sim = this.ckpt.take(stop, this.worthAfter(sim?.now() ?? -1)) ?? sim;
        share = { from };
      }
    } else {
      // The Sim latest at or before `t`: `view` (forward), the replay in progress, a
      // checkpoint, else a new one from time 0.
      sim = t >= this.view.now() ? this.view : null;
      if (p && !p.share && p.sim !== this.view && p.sim.now() <= t && (!sim || p.sim.now() > sim.now())) sim = p.sim;
      // A shared Sim going forward in its window runs on: a checkpoint would leave `ahead`
      // behind the time shown, to record its way there (and be used up by playing).
      if (!(sim === this.view && this.shared())) sim = this.ckpt.take(t, this.worthAfter(sim?.now() ?? -1)) ?? sim;
    }
    // A replay in progress toward another time is dropped (its Sims go to the checkpoints).
    if (p && p.sim !== sim) this.dropReplay();
    if (!sim) sim = new Sim(this.yaml, { record: false, windowEvents: WINDOW_EVENTS });
    if (share && sim !== p?.sim && sim.recordingSince() !== null) {
      // It records again from `from`: what it kept goes (`ahead`'s indices start over).
      sim.setRecording(false);
      if (sim === this.ahead) this.restarted();
    }
    if (sim !== p?.sim) this.lastFrom = sim.now();
    this.pending = { sim, target: t, worked: this.pending?.worked ?? 0, share, total: Math.max(1, t - sim.now()) };
    // Start each seek with small steps: the last one may have grown them over a quiet stretch.
    this.replayChunk = 100;
    return this.continueReplay(budgetMs);
  }

  /** Whether `view` is `ahead` too: a recording at the time shown, with nothing past it. */
  shared(): boolean {
    return this.view === this.ahead;
  }

  /**
   * From a shared() Sim, a second one for `ahead` (a checkpoint, or a new Sim, run unrecorded
   * to the moment the first began recording, then recording to where it is): the same events
   * numbered the same, which `ahead` can then run past the time shown. `view` stops recording.
   */
  private split(): void {
    if (!this.shared()) return;
    const old = this.view;
    const since = old.recordingSince();
    let sim: Sim;
    if (since === null) {
      sim = new Sim(this.yaml, { windowEvents: WINDOW_EVENTS });
      this.restarted();
    } else {
      sim = this.ckpt.take(since) ?? new Sim(this.yaml, { record: false, windowEvents: WINDOW_EVENTS });
      sim.runUntil(since);
      sim.setRecording(true);
    }
    sim.runUntil(old.now());
    old.setRecording(false);
    this.ahead = sim;
  }

  /**
   * How far before `t` a new recording starts: BACK_US, or where the scout's run delivered
   * BACK_FRAMES fewer frames when that is later (a dense run), but at least MIN_BACK_US.
   */
  private backUs(t: number): number {
    if (this.stepBack?.at === t) return Math.max(MIN_BACK_US, t - this.stepBack.from);
    const p = this.frameProfile;
    const last = p[p.length - 1];
    if (!last || last[0] < t) return BACK_US;
    const want = lerp(p, t, 0) - BACK_FRAMES;
    if (want <= 0) return BACK_US;
    const start = lerp(p, want, 1);
    return Math.min(BACK_US, Math.max(MIN_BACK_US, Math.ceil(t - start)));
  }

  /**
   * A checkpoint replaces a Sim at `base` only when it is later than this: when it saves at
   * least SAVE_MS of running by the scout's measure (playing on does not use them up).
   */
  private worthAfter(base: number): number {
    if (base < 0) return -1;
    const p = this.profile;
    const cost = p[firstIndex(p, (e) => e[0] >= base)]?.[1];
    if (cost === undefined) return Infinity;
    return p[firstIndex(p, (e) => e[1] >= cost + SAVE_MS)]?.[0] ?? Infinity;
  }

  /** `ahead` began a new recording: indices start over. */
  private restarted(): void {
    this.chunks.clear();
    this.epoch += 1;
  }

  /** Work on the seek for at most `budgetMs`; true once `view` is at the target. */
  continueReplay(budgetMs: number): boolean {
    const p = this.pending;
    if (!p) return true;
    const start = performance.now();
    let aheadDone = false;
    for (;;) {
      // A re-run that is to record: unrecorded up to `from`.
      const unrecorded = p.share !== null && p.sim.recordingSince() === null;
      const simBehind = p.sim.now() < p.target;
      // `ahead` covers the frames in flight: LOOKAHEAD_US, or AHEAD_EVENTS in a dense run
      // (not when it is to be the re-run Sim, nor when it is `view` and stays so).
      const aheadBehind =
        p.share === null &&
        (!this.shared() || p.sim !== this.view) &&
        !aheadDone &&
        this.ahead.now() < p.target + LOOKAHEAD_US &&
        (this.ahead.now() <= p.target || this.ahead.eventCount() - this.countAtKnown(p.target) < AHEAD_EVENTS);
      if (!simBehind && !aheadBehind && !unrecorded) break;
      if (performance.now() - start >= budgetMs) {
        p.worked += performance.now() - start;
        return false;
      }
      const t0 = performance.now();
      if (unrecorded) {
        const stop = Math.max(0, p.share!.from - 1);
        if (p.sim.now() >= stop) p.sim.setRecording(true);
        else p.sim.runUntil(Math.min(stop, p.sim.now() + this.replayChunk));
      } else if (simBehind && (!aheadBehind || p.sim.now() <= this.ahead.now())) {
        p.sim.runUntil(Math.min(p.target, p.sim.now() + this.replayChunk));
      } else if (!this.advanceAhead(Math.min(this.replayChunk, Math.max(1, p.target + LOOKAHEAD_US - this.ahead.now())), false)) {
        // `ahead` needs to reach no further than the lookahead past the target: a chunk grown
        // over a quiet stretch would otherwise record the burst after it (from 9 s in
        // three-endpoints at 30,000 connections, when TIME-WAIT was 10 s: 1.2 s recording 10 s
        // to 10.33 s).
        aheadDone = true;
      }
      const took = performance.now() - t0;
      if (took < 1) this.replayChunk = Math.min(this.replayChunk * 2, 10_000_000);
      else if (took > 6) this.replayChunk = Math.max(this.replayChunk / 2, 20);
    }
    p.worked += performance.now() - start;
    this.pending = null;
    const [view, ahead] = [this.view, this.ahead];
    if (p.share) {
      // The re-run Sim is `view` and `ahead` from now on.
      this.view = this.ahead = p.sim;
      if (view !== p.sim) this.release(view);
      if (ahead !== p.sim && ahead !== view) this.release(ahead);
      this.restarted();
    } else if (p.sim !== view) {
      this.view = p.sim;
      // A shared Sim stays `ahead` (its window holds the time shown), else it is let go.
      if (view !== ahead) this.release(view);
    }
    if (p.sim !== view) {
      this.lastReplayMs = p.worked;
      this.replays += 1;
    }
    return true;
  }

  /** The time a seek in progress is heading for, and how far it got (0..1). */
  replaying(): { target: number; done: number; back: boolean } | null {
    const p = this.pending;
    if (!p) return null;
    const left = p.target - p.sim.now();
    return { target: p.target, done: Math.min(1, Math.max(0, 1 - left / p.total)), back: p.sim !== this.view };
  }

  private dropReplay(): void {
    const p = this.pending;
    this.pending = null;
    if (p && p.sim !== this.view && p.sim !== this.ahead) this.release(p.sim);
  }

  /** How far the run is known to go (virtual µs): the end, or as far as explored. */
  knownTime(): number {
    return this.endTime ?? Math.max(this.ahead.now(), this.scout?.now() ?? 0);
  }

  /** Run the scout on for at most `budgetMs` to find the end; true once it is known. */
  explore(budgetMs: number): boolean {
    const started = performance.now();
    while (this.endTime === null && this.scout && performance.now() - started < budgetMs) this.scoutStep();
    return this.endTime !== null;
  }

  /** One slice of the scout's run, its wall cost noted; at its end the checkpoints are planned. */
  private scoutStep(): void {
    const s = this.scout;
    if (!s) return;
    const t0 = performance.now();
    const before = s.now();
    // The slice starts at the next event: a quiet stretch costs nothing to cross, and a slice
    // that crossed one into a burst would note the burst's cost at its own end, out of the
    // checkpoint plan's reach (three-endpoints at 30,000 connections: quiet from 57.2 s, then
    // 600,000 frames from 60 s to its end at 60.32 s).
    const next = s.nextEventTime();
    const idle = next !== null && next > before ? next - before : 0;
    if (next !== null && idle > 0) {
      // Nothing happens before `next`: a sample there, at the cost and frames so far, puts the
      // slice's work after it (a step back into a quiet stretch then lands where its last
      // frames are, not at the stretch's start).
      this.profile.push([next, this.profile[this.profile.length - 1]?.[1] ?? 0]);
      this.frameProfile.push([next, s.framesDelivered()]);
      this.frameSpans.push([-1, -1]);
    }
    s.markDeliveries();
    const done = s.runToEnd(Math.max(1, Math.min(idle + this.exploreChunk, RUN_LIMIT_US - before)));
    const took = performance.now() - t0;
    this.profile.push([s.now(), (this.profile[this.profile.length - 1]?.[1] ?? 0) + took]);
    this.frameProfile.push([s.now(), s.framesDelivered()]);
    const span = s.deliveriesSinceMark();
    this.frameSpans.push([span?.[0] ?? -1, span?.[1] ?? -1]);
    if (done || (s.now() <= before && s.nextEventTime() === null) || s.now() >= RUN_LIMIT_US) {
      this.endTime ??= s.now();
      s.free();
      this.scout = null;
      this.ckpt.plan(this.profile, this.checkpointCount);
      this.planned = true;
    }
    if (took < 0.5) this.exploreChunk = Math.min(this.exploreChunk * 2, EXPLORE_MAX_US);
    else if (took > 6) this.exploreChunk = Math.max(this.exploreChunk / 2, 100);
  }

  /**
   * Background work once the end is known and no seek is going on, for at most `budgetMs`:
   * the scout's run to the end (when `ahead` found the end first), then filling the
   * checkpoints. True when there is nothing left to do.
   */
  park(budgetMs: number): boolean {
    if (this.endTime === null || this.pending) return false;
    const started = performance.now();
    while (!this.planned && performance.now() - started < budgetMs) this.scoutStep();
    if (!this.planned) return false;
    return this.ckpt.fill(Math.max(0, budgetMs - (performance.now() - started)));
  }

  /** The checkpoints' virtual times (µs). */
  checkpointTimes(): readonly number[] {
    return this.ckpt.slots();
  }

  /** Checkpoints parked and planned ("3/6"), or null before they are planned. */
  checkpoints(): string | null {
    if (!this.planned) return null;
    const [filled, all] = this.ckpt.filled();
    return `${filled}/${all}`;
  }

  /**
   * Run `ahead` forward by at most `us` of virtual time; notes the end of the scenario when
   * every client has finished. Returns true while there is more to run.
   */
  advanceAhead(us: number, split = true): boolean {
    // `view` stays at the time shown: `ahead` becomes a Sim of its own first (unless `view`
    // is about to be another Sim: a re-run in progress).
    if (split) this.split();
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

  /** Number one past the last trace event known so far (from `ahead`). */
  knownEvents(): number {
    return this.ahead.eventCount();
  }

  /** The first index still kept. */
  firstEvent(): number {
    return this.ahead.eventBase();
  }

  private chunk(c: number): SimEvent[] {
    let evs = this.chunks.get(c);
    const count = this.ahead.eventCount();
    if (evs && (evs.length === CHUNK || c * CHUNK + evs.length >= count)) return evs;
    const from = c * CHUNK;
    const to = Math.min(from + CHUNK, count);
    // Indices before the window's first are gone: their places stay empty.
    const pad = Math.max(0, Math.min(to, this.ahead.eventBase()) - from);
    evs = to > from ? [...new Array<SimEvent>(pad), ...this.ahead.events(from + pad, to)] : [];
    this.chunks.delete(c);
    this.chunks.set(c, evs);
    if (this.chunks.size > MAX_CHUNKS) {
      const oldest = this.chunks.keys().next().value;
      if (oldest !== undefined) this.chunks.delete(oldest);
    }
    return evs;
  }

  /** Event `i` (running `ahead` further when needed), or null past the end or before the window. */
  event(i: number): SimEvent | null {
    if (i < this.ahead.eventBase()) return null;
    while (i >= this.ahead.eventCount()) {
      if (!this.advanceAhead(LOOKAHEAD_US)) return null;
    }
    return this.chunk(Math.floor(i / CHUNK))[i % CHUNK] ?? null;
  }

  /** Events [from, to) that are already known and kept; does not run the simulation. */
  known(from: number, to: number): SimEvent[] {
    const out: SimEvent[] = [];
    const end = Math.min(to, this.ahead.eventCount());
    for (let i = Math.max(this.ahead.eventBase(), from); i < end; ) {
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

  /** The frames on the wires at `t` and the latest drops, from the events known so far
   * (see Sim.flights; does not run the simulation). */
  flights(t: number, maxFlightUs: number, maxEvents: number): Flights {
    // A shared Sim at `t` holds them in its links' queues.
    if (this.shared() && Math.floor(t) === this.view.now()) return this.view.flightsNow(maxEvents);
    return this.ahead.flights(t, maxFlightUs, maxEvents);
  }

  /**
   * The kept events [from, to) without their connections (`conn` null), read afresh: cheap
   * where known() would first index every connection finished so far (the event list).
   */
  plain(from: number, to: number): SimEvent[] {
    return this.ahead.events(Math.max(from, this.ahead.eventBase()), to, false);
  }

  /** Index of the first event after t (the window's first when t is before it). */
  countAt(t: number): number {
    // A shared Sim at `t` has every event up to `t`: nothing to run.
    if (this.shared() && Math.floor(t) <= this.view.now()) return this.countAtKnown(t);
    while (this.ahead.now() < t + 1) {
      if (!this.advanceAhead(t + 1 - this.ahead.now())) break;
    }
    return this.countAtKnown(t);
  }

  /** countAt() among the events known so far, without running the simulation. */
  countAtKnown(t: number): number {
    return this.ahead.countAt(t);
  }

  /** Time of the first event strictly after `t`, or null at the end. A shared Sim at `t` is
   * run to that time (it is where the display goes next). */
  nextTime(t: number): number | null {
    const v = this.view;
    if (this.shared() && t === v.now() && !this.pending) {
      const n = v.eventCount();
      while (v.eventCount() === n) {
        const next = v.nextEventTime();
        if (next === null || next > RUN_LIMIT_US) return null;
        // Every engine event due then (a frame, a timer): the display shows them together.
        v.runUntil(Math.max(next, v.now() + 1));
      }
      return v.now();
    }
    const e = this.event(this.countAt(t));
    return e ? e.time : null;
  }

  /**
   * No event before this time after `t` (playing skips quiet stretches up to there): the
   * next event's time, or, from a shared Sim whose window ends before it, the time the
   * engine's next event is due (nothing may happen then; nothing happens before). Null at
   * the end.
   */
  quietUntil(t: number): number | null {
    if (this.shared() && Math.floor(t) <= this.view.now()) {
      // Never split for this (playing calls it every frame): the window, else the engine.
      const i = this.countAtKnown(t);
      if (i < this.ahead.eventCount()) return this.timeOf(i);
      return this.view.nextEventTime();
    }
    return this.nextTime(t);
  }

  /**
   * Time of the last event strictly before `t`, or 0. When `ahead`'s window holds none before
   * `t`, a time from which a recording holds it (afterLastFrameBefore), and refineStepBack()
   * gives the event's time once `view` landed there.
   */
  prevTime(t: number): number {
    const i = this.countAt(t - 1);
    if (i > this.ahead.eventBase()) return this.timeOf(i - 1) ?? Math.max(0, t - 1);
    // No event of `ahead`'s window before `t`: none at all when it began at 0 and kept every
    // event, else before the window.
    if (i === 0 && (this.ahead.recordingSince() ?? 0) === 0) return 0;
    return this.afterLastFrameBefore(Math.min(t, this.windowFrom()));
  }

  /**
   * Where to step back to when `ahead`'s window holds no event before `u`: the last frame
   * delivered before `u`, found in the scout's samples, each of which notes when the first
   * and the last frame since the sample before it were delivered. In the stretch between
   * samples around `u`: its last frame when that is before `u`, else its first when that is
   * (the last before `u` is then between the two); else the last frame of the last stretch
   * before it that had any. Land there, recording from a little before it (`stepBack`): the
   * window then holds that frame and whatever else happened up to `u`, and refineStepBack()
   * finds the last event before `u` (forward, a short run). 0 when no frame came before `u`.
   */
  private afterLastFrameBefore(u: number): number {
    const f = this.frameBefore(u);
    if (f === null) return Math.max(0, u - 1);
    if (f.at < 0) return 0;
    // Whole µs, as seek() lands (the time shown can be fractional while playing).
    const at = Math.max(0, Math.floor(f.at));
    this.stepBack = { at, from: Math.max(0, at - MIN_BACK_US), before: u };
    return at;
  }

  /**
   * A frame delivered before `u`, by the scout's samples (see afterLastFrameBefore): `last`
   * when it is the last one before `u`, else the first of the stretch around `u` (one that
   * came before `u`); `at` -1 when no frame came before `u`; null before the scout's first
   * sample.
   */
  private frameBefore(u: number): { at: number; last: boolean } | null {
    const p = this.frameProfile;
    const spans = this.frameSpans;
    if (p.length === 0) return null;
    const b = firstIndex(p, (e) => e[0] >= u);
    const [first, last] = spans[b] ?? [-1, -1];
    if (first >= 0 && first < u) return last < u ? { at: last, last: true } : { at: first, last: false };
    let j = b - 1;
    while (j >= 0 && (spans[j]?.[1] ?? -1) < 0) j--;
    return { at: j < 0 ? -1 : (spans[j]?.[1] ?? -1), last: true };
  }

  /**
   * Once `view` has landed where afterLastFrameBefore() said: the time of the last event
   * before the point sought, read from the new window (which holds it), or, when that
   * stretch had no event after all, the next landing further back. Null when there is
   * nothing to refine.
   */
  refineStepBack(): number | null {
    const s = this.stepBack;
    if (!s || s.before === null || this.view.now() !== s.at) return null;
    const i = this.countAt(s.before - 1);
    if (i <= this.ahead.eventBase()) {
      // Recorded from 0 and no event before: time 0, as prevTime() says then.
      if (i === 0 && s.from === 0) return s.at === 0 ? null : 0;
      return this.afterLastFrameBefore(Math.min(s.at, this.windowFrom()));
    }
    const exact = this.timeOf(i - 1);
    if (exact === null) return null;
    // The recording from `s.from` holds it: seeking there keeps it (backUs).
    this.stepBack = { at: exact, from: s.from, before: null };
    return exact;
  }

  /** The time of kept event `i` (read without its connection), or null when it is not kept. */
  private timeOf(i: number): number | null {
    return this.ahead.events(i, i + 1, false)[0]?.time ?? null;
  }

  /** First event index >= `from` that satisfies `pred`, scanning at most `limit` events. */
  find(pred: (e: SimEvent) => boolean, from = 0, limit = 400_000): SimEvent | null {
    for (let i = Math.max(from, this.ahead.eventBase()); i < from + limit; i++) {
      const e = this.event(i);
      if (!e) return null;
      if (pred(e)) return e;
    }
    return null;
  }

  // What the views read of the simulation at the time shown (`view`): they go through these,
  // so the views never hold a Sim.

  /** The scenario's name. */
  get name(): string { return this.view.name; }

  topology(): Topology { return this.view.topology(); }

  /** Every interface a capture can be taken on. */
  interfaces(): string[] { return this.view.interfaces(); }

  /** `podnet run --json` at the time shown (read once per moment: a big run's costs ~0.2 s). */
  report(): Report {
    const c = this.readouts();
    return (c.report ??= this.view.report());
  }

  /** The report's nodes alone (cheap: no connections). */
  nodeReports(): NodeReport[] {
    const c = this.readouts();
    return (c.nodes ??= this.view.nodeReports());
  }

  /** The connections a policy denied and those an L7 proxy answered 403, per flow. */
  flaggedConnections(): { denied: Flow[]; forbidden: Flow[] } {
    const c = this.readouts();
    return (c.flagged ??= { denied: this.view.connectionsWith("denied"), forbidden: this.view.connectionsWith(undefined, 403) });
  }

  /** The human summary of `podnet run` at the time shown. */
  summary(): string {
    const c = this.readouts();
    return (c.summary ??= this.view.summary());
  }

  /** How many entries `conntrack -L` lists, its first `limit` lines, and the lines of the
   * entries with one of `selected` (`SRC:SPORT>DST:DPORT`) as original or reply tuple. */
  conntrackHead(node: string, limit: number, selected?: string[]): ConntrackHead {
    return this.view.conntrackHead(node, limit, selected);
  }

  /** The readouts cached for `view`'s current moment (reset when it moves or is replaced). */
  private readouts(): Readouts {
    const v = this.view;
    const c = this.cache;
    if (c && c.sim === v && c.at === v.now() && c.frames === v.framesDelivered()) return c;
    return (this.cache = { sim: v, at: v.now(), frames: v.framesDelivered() });
  }

  /** The node's rules as `iptables-save` / `nft list ruleset` print them. */
  rules(node: string): string { return this.view.rules(node); }

  framesDelivered(): number { return this.view.framesDelivered(); }

  /** tcpdump lines of the kept events up to `t`. */
  tcpdump(iface: string, filter: string, t: number): string[] {
    return this.ahead.tcpdump(iface, filter, t);
  }

  /** The last `last` tcpdump lines of the kept events up to `t`, and how many in all. */
  tcpdumpTail(iface: string, filter: string, t: number, last: number): TcpdumpTail {
    return this.ahead.tcpdumpTail(iface, filter, t, last);
  }

  /** The pcap of the kept events up to `t`. */
  pcap(iface: string, t: number): Uint8Array {
    return this.ahead.pcap(iface, t);
  }

  /** `podnet trace` of a connection, from the kept events. */
  traceText(flow: string, id: number): string {
    return this.ahead.traceText(flow, id);
  }
}
