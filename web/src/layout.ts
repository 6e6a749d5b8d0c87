// The page's layout: the panels of the right column fold and unfold (a button in each
// title, aria-expanded), a lesson step unfolds the panels it is about, folds the others and
// scrolls its focus panel into view, and the topology is sized to fit the left column.
import { $ } from "./dom";
import type { Panel } from "./lessons";
import { app } from "./state";

/** The element of each panel a lesson can point at. */
const PANEL_IDS: Record<Panel, string> = {
  packet: "packet-panel",
  conntrack: "conntrack-panel",
  rules: "rules-panel",
  policy: "policy-panel",
  tcpdump: "tcpdump-panel",
  events: "events-panel",
  report: "report-panel",
  topology: "stage",
};

/** Called when a panel unfolds (its content may need a render). */
let onUnfold: (panel: HTMLElement) => void = () => {};

function foldButton(panel: HTMLElement): HTMLButtonElement | null {
  return panel.querySelector<HTMLButtonElement>(":scope > h2 > button.fold");
}

export function isExpanded(panel: HTMLElement): boolean {
  return !panel.classList.contains("collapsed");
}

export function setExpanded(panel: HTMLElement, open: boolean): void {
  const was = isExpanded(panel);
  panel.classList.toggle("collapsed", !open);
  foldButton(panel)?.setAttribute("aria-expanded", String(open));
  if (open && !was) onUnfold(panel);
}

/** Wire the fold buttons; every panel starts unfolded. */
export function initPanels(unfolded: (panel: HTMLElement) => void): void {
  onUnfold = unfolded;
  for (const panel of document.querySelectorAll<HTMLElement>("section.panel[data-panel]")) {
    const b = foldButton(panel);
    if (!b) continue;
    b.dataset.testid = `fold-${panel.dataset.panel}`;
    b.setAttribute("aria-expanded", "true");
    b.addEventListener("click", () => setExpanded(panel, !isExpanded(panel)));
  }
  window.addEventListener("resize", fitStage);
}

/**
 * Show the panels a lesson step is about: the first is the focus (unfolded, outlined and
 * scrolled into view in its column), the others unfolded and outlined, the packet panel
 * unfolded always; every other panel of the right column folds.
 */
export function focusPanels(look: Panel[]): void {
  for (const el of document.querySelectorAll(".look, .focus")) el.classList.remove("look", "focus");
  const panels = [...document.querySelectorAll<HTMLElement>("section.panel[data-panel]")];
  document.body.classList.toggle("in-lesson", look.length > 0);
  if (look.length === 0) {
    for (const p of panels) p.style.order = "";
    delete document.body.dataset.focus;
    return;
  }
  const ids = look.map((p) => PANEL_IDS[p]);
  // In the right column: the packet first, then the focus, then the other panels looked at,
  // then the folded rest, in the page's order.
  const rank = (id: string): number => (id === PANEL_IDS.packet ? 0 : ids.includes(id) ? 1 + ids.indexOf(id) : 20);
  for (const panel of panels) {
    setExpanded(panel, rank(panel.id) < 20);
    panel.style.order = String(rank(panel.id));
  }
  for (const id of ids) $(id).classList.add("look");
  const focus = $(ids[0]!);
  focus.classList.add("focus");
  document.body.dataset.focus = look[0];
  fitStage();
  $("col-right").scrollTop = 0;
  scrollIntoColumn(focus);
}

/** Scroll `el`'s column so that `el`'s top part is in view. */
function scrollIntoColumn(el: HTMLElement): void {
  const col = el.closest<HTMLElement>(".column");
  if (!col) return;
  const c = col.getBoundingClientRect();
  const r = el.getBoundingClientRect();
  if (r.top < c.top || r.top + Math.min(r.height, 200) > c.bottom) col.scrollTop += r.top - c.top - 4;
}

/**
 * Size the topology to the room the left column leaves it: as wide as the column, but no
 * taller than what is left under the lesson with the timeline below it.
 */
export function fitStage(): void {
  const view = $("stage-view");
  const topo = app.topoView;
  const col = $("col-left");
  if (!topo) return;
  if (getComputedStyle(col).overflowY !== "auto") {
    view.style.maxWidth = ""; // one column: the page scrolls
    return;
  }
  const lesson = $("lesson-panel");
  const lessonH = lesson.hidden ? 0 : lesson.offsetHeight + 10;
  const controls = $("timeline").offsetHeight + 60; // the timeline, counters and paddings
  const room = col.clientHeight - lessonH - controls;
  const width = Math.max(320, (room * topo.width) / topo.height);
  view.style.maxWidth = `${Math.floor(width)}px`;
}
