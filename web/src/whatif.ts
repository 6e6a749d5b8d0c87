// "What if": the loaded scenario (before) against the editor's text (after), as `podnet diff`
// does it: the same Traffic and the NetworkPolicy probes run in both worlds with the same
// seed, and the connections and probes whose outcome changed listed with the verdict (the
// deciding rule) on each side. The changed connections are also marked in the report.
import { $, errorText, h, setStatus } from "./dom";
import { setExpanded } from "./layout";
import { renderReport } from "./panels";
import { whatIf } from "./podnet";
import type { CellChange, ConnChange, Diff } from "./podnet";
import { app } from "./state";

/** The key of a connection in `app.whatIfChanged`. */
export const connKey = (flow: string, id: number): string => `${flow}#${id}`;

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

/** Compare the loaded scenario with `after`; a load error of either is shown instead. */
export function runWhatIf(after: string): void {
  const tl = app.tl;
  if (!tl) {
    setStatus("load a scenario first: What if compares the editor's text with it", "error");
    return;
  }
  let d: Diff;
  try {
    d = whatIf(tl.yaml, after);
  } catch (e) {
    clearMarks();
    show([h("p", { class: "error", testid: "whatif-error", text: errorText(e) })]);
    setStatus("What if: the edited scenario did not load", "error");
    return;
  }
  renderDiff(d, tl.name);
  setStatus(`What if: ${d.connections.length} connections and ${d.probes.length} probes change`);
}

function clearMarks(): void {
  if (app.whatIfChanged.size === 0) return;
  app.whatIfChanged = new Set();
  renderReport();
}

/** A new scenario was loaded: the comparison with the old one no longer holds. */
export function clearWhatIf(): void {
  app.whatIfChanged = new Set();
  $("whatif-panel").hidden = true;
  $("whatif-result").replaceChildren();
}
