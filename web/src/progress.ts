// What the page says while the module works: a re-run toward a moment (progress bar and
// percentage), the search for the end of the run, and where the kept window of events starts.
import type { Timeline } from "./store";

function fmt(us: number): string {
  return `${(us / 1e6).toFixed(6)} s`;
}

/** Update the counters' progress bar and text for the timeline's state. */
export function showProgress(tl: Timeline, bar: HTMLProgressElement, info: HTMLElement, windowInfo: HTMLElement): void {
  const rp = tl.replaying();
  if (rp) {
    bar.hidden = false;
    bar.value = rp.done;
    info.textContent = `· ${rp.back ? "replaying" : "running"} to ${fmt(rp.target)}: ${Math.floor(rp.done * 100)}%`;
  } else if (tl.endTime === null) {
    // The end is not known yet: the scout is still running (as far as RUN_LIMIT_US).
    bar.hidden = false;
    bar.removeAttribute("value");
    info.textContent = `· exploring the run: ${fmt(tl.knownTime())}`;
  } else {
    bar.hidden = true;
    const ck = tl.checkpoints();
    info.textContent =
      (tl.replays > 0 ? `· last replay ${tl.lastReplayMs.toFixed(0)} ms` : "") +
      (ck !== null && !ck.endsWith("/0") ? ` · checkpoints ${ck}` : "");
  }
  // Where the last re-run of the time shown started: 0, or a checkpoint's time.
  info.dataset.from = String(tl.lastFrom);
  const first = tl.windowFrom();
  windowInfo.textContent = first > 0 ? `· events kept from ${fmt(first)}` : "";
  windowInfo.dataset.us = String(first);
}
