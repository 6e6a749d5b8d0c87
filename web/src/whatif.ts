// "What if": the loaded scenario (before) against the editor's text (after), as `podnet diff`
// does it: the same Traffic and the NetworkPolicy probes run in both worlds with the same
// seed, and the connections and probes whose outcome changed listed with the verdict (the
// deciding rule) on each side. The changed connections are also marked in the report.
import { $, h, setStatus } from "./dom";
import { setExpanded } from "./layout";
import { renderReport } from "./panels";
import type { CellChange, ConnChange, Diff } from "./podnet";
import { app, connKey } from "./state";
import type { WhatIfReply, WhatIfRequest } from "./whatif-worker";

function outcome(before: string, after: string): HTMLElement {
  return h(
    "span",
    { class: "outcome", testid: "whatif-outcome" },
    h("span", { class: `was ${before}`, text: before }),
    " → ",
    h("span", { class: `now ${after}`, text: after }),
  );
}

/** One change: what it is on a line, then the verdict before and after. */
function item(testid: string, head: (HTMLElement | string)[], before: string, after: string): HTMLLIElement {
  const dl = h(
    "dl",
    {},
    h("dt", { text: "before" }),
    h("dd", { testid: "whatif-why-before", text: before || "—" }),
    h("dt", { text: "after" }),
    h("dd", { testid: "whatif-why-after", text: after || "—" }),
  );
  return h("li", { testid }, h("div", { class: "head" }, ...head), dl);
}

function connItem(c: ConnChange): HTMLLIElement {
  const li = item(
    "whatif-conn",
    [
      h("strong", { testid: "whatif-flow", text: `${c.flow} #${c.id}` }),
      " ",
      h("span", { class: "mono", testid: "whatif-endpoints", text: `${c.from} → ${c.to}` }),
      " ",
      outcome(c.before, c.after),
    ],
    c.whyBefore,
    c.whyAfter,
  );
  li.dataset.flow = c.flow;
  li.dataset.id = String(c.id);
  return li;
}

function probeItem(c: CellChange): HTMLLIElement {
  return item(
    "whatif-probe",
    [
      h("strong", { testid: "whatif-endpoints", text: `${c.from} → ${c.to}` }),
      ` ${c.protocol}/${c.port} `,
      outcome(c.before.result, c.after.result),
    ],
    c.before.why ?? c.before.error ?? "",
    c.after.why ?? c.after.error ?? "",
  );
}

function list(title: string, items: HTMLLIElement[], testid: string): HTMLElement[] {
  return [h("h3", { text: title }), h("ul", { class: "whatif-list", testid }, ...items)];
}

/** The result of a comparison, in the What if panel. */
export function renderDiff(d: Diff, name: string): void {
  const out: HTMLElement[] = [
    h("p", {
      class: "hint",
      testid: "whatif-summary",
      text:
        `before: ${name} as loaded; after: the editor's text (same seed). ` +
        `${d.connections.length} of ${d.connectionsCompared} connections changed, ` +
        `${d.probes.length} of ${d.probesCompared} probes changed.`,
    }),
  ];
  if (d.connections.length === 0) {
    out.push(h("p", { testid: "whatif-none", text: "no connection changes" }));
  } else {
    out.push(...list("Connections whose outcome changed", d.connections.map(connItem), "whatif-conns"));
  }
  if (d.probes.length > 0) {
    out.push(...list("NetworkPolicy probes whose outcome changed", d.probes.map(probeItem), "whatif-probes"));
  } else if (d.probesCompared > 0) {
    out.push(h("p", { testid: "whatif-no-probes", text: "no probe changes" }));
  }
  if (d.onlyInOne.length > 0) {
    out.push(h("p", { testid: "whatif-only", text: `probed in one world only: ${d.onlyInOne.join(", ")}` }));
  }
  show(out);
  app.whatIfChanged = new Set(d.connections.map((c) => connKey(c.flow, c.id)));
  renderReport();
}

function show(content: HTMLElement[]): void {
  const panel = $("whatif-panel");
  panel.hidden = false;
  setExpanded(panel, true);
  $("whatif-result").replaceChildren(...content);
  panel.scrollIntoView({ block: "nearest" });
}

let worker: Worker | null = null;
/** The request whose reply is awaited; a reply to any other is stale (dropped). */
let awaited = 0;
let nextId = 1;
let settle: (() => void) | null = null;

function done(): void {
  settle?.();
  settle = null;
}

function startWorker(): Worker {
  const w = new Worker(new URL("./whatif-worker.ts", import.meta.url), { type: "module" });
  w.onmessage = (e: MessageEvent<WhatIfReply>) => {
    const r = e.data;
    if (r.id !== awaited) return;
    const name = app.tl?.name ?? "";
    if ("error" in r) showError(r.error);
    else {
      renderDiff(r.diff, name);
      setStatus(`What if: ${r.diff.connections.length} connections and ${r.diff.probes.length} probes change`);
    }
    done();
  };
  w.onerror = (e) => {
    // A crash of the module (a bug): the next What if starts a new worker.
    e.preventDefault();
    worker?.terminate();
    worker = null;
    showError(`What if failed: ${e.message || "the worker stopped"}`);
    done();
  };
  return w;
}

function showError(message: string): void {
  clearMarks();
  show([h("p", { class: "error", testid: "whatif-error", text: message })]);
  setStatus("What if: the edited scenario did not load", "error");
}

/**
 * Compare the loaded scenario with `after` (in a worker); a load error of either is shown
 * instead. Resolves when the result is shown, or when it no longer applies.
 */
export function runWhatIf(after: string): Promise<void> {
  const tl = app.tl;
  if (!tl) {
    setStatus("load a scenario first: What if compares the editor's text with it", "error");
    return Promise.resolve();
  }
  done();
  awaited = nextId++;
  worker ??= startWorker();
  const request: WhatIfRequest = { id: awaited, before: tl.yaml, after };
  worker.postMessage(request);
  setStatus("What if: running both worlds…", "busy");
  return new Promise((resolve) => {
    settle = resolve;
  });
}

function clearMarks(): void {
  if (app.whatIfChanged.size === 0) return;
  app.whatIfChanged = new Set();
  renderReport();
}

/** A new scenario was loaded: the comparison with the old one no longer holds. */
export function clearWhatIf(): void {
  awaited = 0;
  done();
  app.whatIfChanged = new Set();
  $("whatif-panel").hidden = true;
  $("whatif-result").replaceChildren();
}
