// The lesson panel: a lesson's steps, each loading its example, moving to the moment of its
// packet, selecting it and pointing at the panels to look at.
import { seek } from "./clock";
import { $, h, setStatus } from "./dom";
import { LESSONS } from "./lessons";
import type { Lesson, Panel } from "./lessons";
import { loadExample } from "./load";
import { renderAll, renderNodeTabs } from "./panels";
import { select } from "./selection";
import { app } from "./state";

let lesson: Lesson | null = null;
let lessonStep = 0;

function lessonExample(l: Lesson, stepIdx: number): string | null {
  const step = l.steps[stepIdx];
  if (!step) return null;
  const m = step.example;
  const found = typeof m === "string" ? app.bundled.find((e) => e.name === m) : app.bundled.find((e) => m.test(e.name));
  return found?.name ?? null;
}

function flash(panels: Panel[]): void {
  const ids: Record<Panel, string> = {
    packet: "packet-panel",
    conntrack: "conntrack-panel",
    rules: "rules-panel",
    policy: "policy-panel",
    tcpdump: "tcpdump-panel",
    events: "events-panel",
    report: "report-panel",
    topology: "stage",
  };
  for (const el of document.querySelectorAll(".look")) el.classList.remove("look");
  for (const p of panels) $(ids[p]).classList.add("look");
}

export function showLesson(): void {
  const panel = $("lesson-panel");
  if (!lesson) {
    panel.hidden = true;
    flash([]);
    return;
  }
  panel.hidden = false;
  $("lesson-title").textContent = lesson.title;
  const available = lesson.steps.length > 0 && lessonExample(lesson, lessonStep) !== null;
  if (!available) {
    $("lesson-step-title").textContent = "Not available yet";
    $("lesson-text").replaceChildren(h("p", { testid: "lesson-unavailable", text: lesson.unavailable ?? "No bundled example for this lesson." }));
    $("lesson-look").textContent = "";
    $("lesson-progress").textContent = "";
    return;
  }
  const step = lesson.steps[lessonStep]!;
  $("lesson-step-title").textContent = step.title;
  $("lesson-text").replaceChildren(...step.text.split("\n\n").map((p) => h("p", { text: p })));
  $("lesson-progress").textContent = `${lessonStep + 1} / ${lesson.steps.length}`;
  const exName = lessonExample(lesson, lessonStep)!;
  if (app.tl?.yaml !== app.bundled.find((e) => e.name === exName)?.yaml) loadExample(exName);
  if (!app.tl) return;
  const found = app.tl.find(step.find);
  if (!found) {
    $("lesson-look").textContent = "The packet this step is about did not happen in this run.";
    setStatus("lesson step: packet not found", "error");
    return;
  }
  app.playing = false;
  seek(found.time);
  select(found.index);
  if (step.node && app.nodeNames.includes(step.node)) {
    app.ctNode = step.node;
    app.rulesNode = step.node;
    renderNodeTabs();
  }
  renderAll();
  $("lesson-look").textContent = `Look at: ${step.look.join(", ")}.`;
  flash(step.look);
  document.body.dataset.lessonStep = `${lesson.id}:${lessonStep}`;
}

export function startLesson(id: string): void {
  lesson = LESSONS.find((l) => l.id === id) ?? null;
  lessonStep = 0;
  showLesson();
}

/** Go `by` steps on in the lesson (back when negative), within its steps. */
export function moveLesson(by: number): void {
  if (!lesson) return;
  const next = lessonStep + by;
  if (next < 0 || next >= lesson.steps.length) return;
  lessonStep = next;
  showLesson();
}

export function closeLesson(): void {
  lesson = null;
  showLesson();
}
