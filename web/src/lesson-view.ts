// The lesson panel: a lesson's steps, each loading its example, moving to the moment of its
// packet, selecting it and bringing the panels it is about into view; under the last step,
// the lesson's question, whose expected answer is computed from the run when the step lands.
import { seekThen } from "./clock";
import { $, h, setStatus } from "./dom";
import { fitStage, focusPanels, setExpanded } from "./layout";
import { normalizeAnswer } from "./lesson-types";
import type { AnswerContext, LessonStep } from "./lesson-types";
import { LESSONS } from "./lessons";
import type { Lesson } from "./lessons";
import { loadExample } from "./load";
import { showCurrentHop } from "./packet-view";
import { renderAll, renderNodeTabs } from "./panels";
import type { SimEvent } from "./podnet";
import { select } from "./selection";
import { app } from "./state";

let lesson: Lesson | null = null;
let lessonStep = 0;
/** Bumped by each step shown: a step still landing is forgotten when another is asked for. */
let stepSeq = 0;
/** The answer to the lesson's question, computed when its last step landed. */
let expected: string | null = null;

function lessonExample(l: Lesson, stepIdx: number): string | null {
  const step = l.steps[stepIdx];
  if (!step) return null;
  const m = step.example;
  const found = typeof m === "string" ? app.bundled.find((e) => e.name === m) : app.bundled.find((e) => m.test(e.name));
  return found?.name ?? null;
}

function hideQuestion(): void {
  $("lesson-question").hidden = true;
  expected = null;
  const verdict = $("lesson-verdict");
  verdict.textContent = "";
  verdict.className = "";
  delete verdict.dataset.result;
}

export function showLesson(): void {
  const panel = $("lesson-panel");
  const seq = ++stepSeq;
  hideQuestion();
  delete document.body.dataset.lessonStep;
  if (!lesson) {
    panel.hidden = true;
    focusPanels([]);
    fitStage();
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
  $("lesson-look").textContent = "";
  const exName = lessonExample(lesson, lessonStep)!;
  if (app.tl?.yaml !== app.bundled.find((e) => e.name === exName)?.yaml) loadExample(exName);
  const tl = app.tl;
  const topology = app.topology;
  if (!tl || !topology) return;
  const found = tl.find((e) => step.find(e, { topology }));
  if (!found) {
    $("lesson-look").textContent = "The packet this step is about did not happen in this run.";
    setStatus("lesson step: packet not found", "error");
    return;
  }
  const epoch = tl.epoch;
  app.playing = false;
  $("play").textContent = "▶ play";
  fitStage();
  seekThen(found.time, () => {
    if (seq === stepSeq) land(step, epoch === tl.epoch ? found : relocate(found));
  });
}

/** The same event in the recording the seek started (event numbers start over in a new one). */
function relocate(found: SimEvent): SimEvent | null {
  const tl = app.tl;
  if (!tl) return null;
  const same = (e: SimEvent): boolean =>
    e.time === found.time && e.kind === found.kind && e.iface === found.iface && e.packet.line === found.packet.line;
  return tl.find(same, tl.countAt(found.time - 1), 100_000);
}

/** The step's moment is shown: select its packet and point at its panels. */
function land(step: LessonStep, e: SimEvent | null): void {
  const tl = app.tl;
  if (!lesson || !tl || !e) {
    $("lesson-look").textContent = "The packet this step is about is no longer in the kept events.";
    return;
  }
  select(e.index);
  if (step.node && app.nodeNames.includes(step.node)) {
    app.ctNode = step.node;
    app.rulesNode = step.node;
    renderNodeTabs();
  }
  if (step.tcpdump) {
    app.tcpdumpIface = step.tcpdump.iface === "event" ? e.iface : step.tcpdump.iface;
    app.tcpdumpFilter = step.tcpdump.filter;
    $<HTMLSelectElement>("tcpdump-iface").value = app.tcpdumpIface;
    $<HTMLInputElement>("tcpdump-filter").value = app.tcpdumpFilter;
  }
  renderAll();
  $("lesson-look").textContent = `Look at: ${step.look.join(", ")}.`;
  focusPanels(step.look);
  showCurrentHop();
  if (lessonStep === lesson.steps.length - 1) askQuestion(e);
  document.body.dataset.lessonStep = `${lesson.id}:${lessonStep}`;
}

function askQuestion(e: SimEvent): void {
  const tl = app.tl;
  if (!lesson || !tl || !app.topology) return;
  const q = lesson.question;
  const ctx: AnswerContext = {
    event: e,
    journey: app.selected?.journey ?? [e],
    topology: app.topology,
    report: (() => {
      try {
        return tl.report();
      } catch {
        return null;
      }
    })(),
    tcpdump: (iface, filter) => tl.tcpdump(iface, filter, app.T),
  };
  expected = q.answer(ctx);
  $("lesson-ask").textContent = q.ask;
  const input = $<HTMLInputElement>("lesson-answer");
  input.value = "";
  input.placeholder = q.form;
  $("lesson-question").hidden = false;
  if (expected === null) {
    const verdict = $("lesson-verdict");
    verdict.textContent = "This run does not have the answer (the engine did not record it).";
    verdict.dataset.result = "unknown";
  }
  fitStage();
}

/** Check the learner's answer against the one computed from the run. */
export function checkAnswer(): void {
  const verdict = $("lesson-verdict");
  const given = normalizeAnswer($<HTMLInputElement>("lesson-answer").value);
  if (expected === null || given === "") return;
  const right = given === normalizeAnswer(expected);
  verdict.textContent = right ? `Right: ${expected}.` : "Not that: look again at the highlighted panels.";
  verdict.className = right ? "right" : "wrong";
  verdict.dataset.result = right ? "right" : "wrong";
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

/** Leave the lesson: every panel unfolds again. */
export function closeLesson(): void {
  lesson = null;
  $<HTMLSelectElement>("lesson-select").value = "";
  showLesson();
  for (const p of document.querySelectorAll<HTMLElement>("section.panel[data-panel]")) setExpanded(p, true);
}
