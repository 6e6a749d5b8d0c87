// Time: seeking (re-running when going back), stepping, playing, and the frame loop that
// moves the time shown and redraws.
import { $, errorText, setStatus } from "./dom";
import { drawPackets } from "./draw";
import { renderPacket } from "./packet-view";
import { renderAll, renderCounters } from "./panels";
import { app } from "./state";

/** How long a replay may block the page before it goes on frame by frame. */
const SYNC_REPLAY_MS = 60;
/** ...and then this much per frame (the page redraws the progress at ~30 fps meanwhile). */
const REPLAY_FRAME_MS = 25;
let lastFrame = performance.now();
/** What to do once the seek in progress lands (a lesson step selecting its packet). */
let landed: (() => void) | null = null;

export function endTime(): number | null {
  return app.tl?.endTime ?? null;
}

/** Where the display is heading: the target of a replay in progress, else the time shown. */
function targetTime(): number {
  return app.replayTarget ?? app.T;
}

/**
 * Move the displayed time (clamped), replaying when it goes back. A long replay goes on over
 * the next frames (the page stays responsive and says how far it got); the tables keep the
 * old time until it is done.
 */
export function seek(t: number): void {
  if (!app.tl) return;
  landed = null;
  const end = endTime();
  const target = Math.max(0, end !== null ? Math.min(t, end) : t);
  if (app.tl.seek(target, SYNC_REPLAY_MS)) {
    app.T = target;
    app.replayTarget = null;
  } else {
    // Goes on over the next frames; playing resumes from there.
    app.replayTarget = target;
  }
  document.body.dataset.replaying = String(app.replayTarget !== null);
  app.needsDraw = true;
  app.panelsDirty = true;
}

export function stepForward(): void {
  if (!app.tl) return;
  app.playing = false;
  const next = app.tl.nextTime(targetTime());
  if (next !== null) seek(next);
  if (app.replayTarget === null) renderAll();
}

export function stepBack(): void {
  if (!app.tl) return;
  app.playing = false;
  backTo(app.tl, app.tl.prevTime(targetTime()), 3);
}

/**
 * One step back: seek to `t`; where the window held no event before the time shown, `t` is
 * where a recording that holds the last one starts, and the step goes on to that event
 * (refineStepBack), a few landings at most.
 */
function backTo(tl: NonNullable<typeof app.tl>, t: number, rounds: number): void {
  seekThen(t, () => {
    const next = rounds > 0 && app.tl === tl ? tl.refineStepBack() : null;
    if (next !== null && next !== app.T) backTo(tl, next, rounds - 1);
    else if (app.replayTarget === null) renderAll(); // else the frame loop renders once the re-run is done
  });
}

export function togglePlay(): void {
  if (!app.tl) return;
  const end = endTime();
  if (!app.playing && end !== null && app.T >= end) seek(0);
  app.playing = !app.playing;
  lastFrame = performance.now();
  app.panelsDirty = true;
  $("play").textContent = app.playing ? "❙❙ pause" : "▶ play";
}

// ---------------------------------------------------------------------------------------
// The frame loop

let frames = 0;
let fpsWindow = performance.now();
let seekTarget: number | null = null;

/** One animation frame; an error is shown and playing stops, but the loop goes on. */
export function frame(now: number): void {
  try {
    advanceFrame(now);
  } catch (e) {
    app.playing = false;
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
  if (app.tl) {
    // A new recording numbers events afresh: a selection made in the old one is let go.
    if (app.selected && app.selEpoch !== app.tl.epoch) (app.selected = null), renderPacket();
    if (seekTarget !== null) {
      seek(seekTarget);
      seekTarget = null;
    }
    if (app.replayTarget !== null) {
      if (app.tl.continueReplay(REPLAY_FRAME_MS)) {
        app.T = app.replayTarget;
        app.replayTarget = null;
        document.body.dataset.replaying = "false";
        app.needsDraw = true;
        app.panelsDirty = true;
        const then = landed;
        landed = null;
        then?.();
      } else {
        renderCounters();
        return;
      }
    }
    if (app.playing) {
      let t = app.T + (dt / 1000) * app.speed;
      // Skip quiet stretches: nothing on the wires and the next event far away.
      if ($<HTMLInputElement>("skip-idle").checked && app.inFlight === 0) {
        const next = app.tl.quietUntil(app.T);
        if (next !== null && next - app.T > app.speed * 0.4) t = Math.max(t, next - app.speed * 0.05);
      }
      const end = endTime();
      if (end !== null && t >= end) {
        t = end;
        app.playing = false;
        app.panelsDirty = true;
        $("play").textContent = "▶ play";
      }
      seek(t);
    } else if (app.tl.endTime === null) {
      // Idle: find where the scenario ends, a few milliseconds of work per frame.
      app.tl.explore(8);
      renderCounters();
    } else {
      // Idle: park Sims along a long run (checkpoints), as much work per frame.
      app.tl.park(10);
    }
    // How many are parked ("3/6"; seeks use them up).
    const ck = app.tl.checkpoints();
    if (ck !== null && document.body.dataset.checkpoints !== ck) {
      document.body.dataset.checkpoints = ck;
      document.body.dataset.checkpointTimes = app.tl.checkpointTimes().join(" ");
      renderCounters();
    }
    if (app.needsDraw) {
      drawPackets();
      renderCounters();
      app.needsDraw = false;
    }
    if (app.panelsDirty && (!app.playing || now - app.lastPanels > 250)) {
      // While playing, the tables only change when events happen.
      const count = app.tl.framesDelivered();
      if (!app.playing || count !== app.lastPanelCount || app.skippedPanels) {
        app.lastPanelCount = count;
        renderAll();
      } else {
        app.panelsDirty = false;
      }
    }
  }
}

/** Seek to `t`, then call `then` once the time shown is `t` (now, or after a re-run). */
export function seekThen(t: number, then: () => void): void {
  seek(t);
  if (app.replayTarget === null) then();
  else landed = then;
}

/** Seek on the next frame (the time slider: many inputs, one seek per frame). */
export function seekSoon(t: number): void {
  app.playing = false;
  $("play").textContent = "▶ play";
  seekTarget = t;
}
