// The podnet playground: a scenario simulated by the wasm build of podnet, drawn and replayed
// in virtual time. This module wires the page's controls to the controllers and starts it;
// data flows from the wasm module (podnet.ts) through the timeline (store.ts) and the page
// state (state.ts) to the views (draw, panels, packet-view, lesson-view).
import { frame, seekSoon, stepBack, stepForward, togglePlay } from "./clock";
import { $, errorText, h, setStatus } from "./dom";
import { canvas, packetAt } from "./draw";
import { initPanels } from "./layout";
import { checkAnswer, closeLesson, moveLesson, startLesson } from "./lesson-view";
import { LESSONS } from "./lessons";
import { editor, load, loadExample } from "./load";
import { renderAll, renderTcpdump } from "./panels";
import { check, examples, init, version } from "./podnet";
import { select } from "./selection";
import { app } from "./state";
import { runWhatIf } from "./whatif";

function download(bytes: Uint8Array, name: string): void {
  const copy = new Uint8Array(bytes); // detach from wasm memory
  const url = URL.createObjectURL(new Blob([copy], { type: "application/vnd.tcpdump.pcap" }));
  const a = h("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function wire(): void {
  $("load").addEventListener("click", () => load(editor.value));
  const whatIfButton = $<HTMLButtonElement>("whatif");
  // The comparison runs in a worker: the button stays usable (the latest press wins) and says
  // it is busy meanwhile.
  let whatIfRunning = 0;
  whatIfButton.addEventListener("click", () => {
    whatIfRunning += 1;
    whatIfButton.setAttribute("aria-busy", "true");
    void runWhatIf(editor.value).finally(() => {
      whatIfRunning -= 1;
      if (whatIfRunning === 0) whatIfButton.removeAttribute("aria-busy");
    });
  });
  editor.textarea.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      load(editor.value);
    }
  });
  let checkTimer = 0;
  editor.textarea.addEventListener("input", () => {
    clearTimeout(checkTimer);
    checkTimer = window.setTimeout(() => editor.show(check(editor.value)), 300);
  });
  $<HTMLSelectElement>("example-select").addEventListener("change", (e) => {
    closeLesson();
    loadExample((e.target as HTMLSelectElement).value);
  });
  $<HTMLSelectElement>("lesson-select").addEventListener("change", (e) => startLesson((e.target as HTMLSelectElement).value));
  $("lesson-next").addEventListener("click", () => moveLesson(1));
  $("lesson-prev").addEventListener("click", () => moveLesson(-1));
  $("lesson-question").addEventListener("submit", (e) => {
    e.preventDefault();
    checkAnswer();
  });
  $("lesson-close").addEventListener("click", closeLesson);
  canvas.addEventListener("click", (ev) => {
    const p = packetAt(ev);
    if (p) select(p.index);
  });
  canvas.addEventListener("mousemove", (ev) => {
    const p = packetAt(ev);
    canvas.title = p ? p.label : "";
    canvas.style.cursor = p ? "pointer" : "default";
  });
  $("play").addEventListener("click", togglePlay);
  $("step").addEventListener("click", stepForward);
  $("step-back").addEventListener("click", stepBack);
  const scrub = $<HTMLInputElement>("scrub");
  scrub.addEventListener("input", () => seekSoon(Number(scrub.value)));
  $<HTMLSelectElement>("speed").addEventListener("change", (e) => {
    app.speed = Number((e.target as HTMLSelectElement).value);
  });
  $<HTMLSelectElement>("tcpdump-iface").addEventListener("change", (e) => {
    app.tcpdumpIface = (e.target as HTMLSelectElement).value;
    renderTcpdump();
  });
  let filterTimer = 0;
  $<HTMLInputElement>("tcpdump-filter").addEventListener("input", (e) => {
    const v = (e.target as HTMLInputElement).value;
    clearTimeout(filterTimer);
    filterTimer = window.setTimeout(() => {
      app.tcpdumpFilter = v;
      renderTcpdump();
    }, 200);
  });
  $("pcap-download").addEventListener("click", () => {
    if (!app.tl) return;
    try {
      download(app.tl.pcap(app.tcpdumpIface, app.T), `${app.tcpdumpIface.replace(/\//g, "_")}.pcap`);
    } catch (e) {
      const err = $("tcpdump-error");
      err.hidden = false;
      err.textContent = errorText(e);
    }
  });
  document.addEventListener("keydown", (e) => {
    // Keys for the timeline, unless a control has the focus (space presses a focused button).
    const t = e.target;
    if (t instanceof Element && t.closest("button, input, select, textarea, summary, a, [tabindex]")) return;
    if (e.key === " ") {
      e.preventDefault();
      togglePlay();
    } else if (e.key === "ArrowRight") stepForward();
    else if (e.key === "ArrowLeft") stepBack();
  });
}

async function main(): Promise<void> {
  const wasm = await init();
  (window as unknown as { podnetMemory: () => number }).podnetMemory = () => wasm.memory.buffer.byteLength;
  $("version").textContent = `podnet ${version()}`;
  app.bundled = examples();
  const exSel = $<HTMLSelectElement>("example-select");
  exSel.replaceChildren(...app.bundled.map((e) => {
    const o = h("option", { text: `${e.name}: ${e.title}` });
    o.value = e.name;
    return o;
  }));
  const lSel = $<HTMLSelectElement>("lesson-select");
  for (const l of LESSONS) {
    const o = h("option", { text: l.title });
    o.value = l.id;
    lSel.append(o);
  }
  initPanels(() => renderAll());
  wire();
  const params = new URLSearchParams(location.search);
  const first = params.get("example") ?? (app.bundled.some((e) => e.name === "seed") ? "seed" : app.bundled[0]?.name);
  if (first) loadExample(first);
  const lessonId = params.get("lesson");
  if (lessonId) {
    lSel.value = lessonId;
    startLesson(lessonId);
  }
  document.body.dataset.ready = "true";
  requestAnimationFrame(frame);
}

main().catch((e: unknown) => {
  setStatus(`could not start: ${errorText(e)}`, "error");
  console.error(e);
});