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

function table(caption: string, head: string[], rows: HTMLTableRowElement[], testid: string): HTMLElement {
  const t = h("table", { class: "whatif-table", testid });
  t.append(h("caption", { text: caption }));
  const tr = h("tr");
  for (const c of head) {
    const th = h("th", { text: c });
    th.scope = "col";
    tr.append(th);
  }
  t.append(h("thead", {}, tr), h("tbody", {}, ...rows));
  return t;
}

function outcome(before: string, after: string): HTMLElement {
  return h(
    "td",
    { class: "outcome" },
    h("span", { class: `was ${before}`, text: before }),
    " → ",
    h("span", { class: `now ${after}`, text: after }),
  );
}

function connRow(c: ConnChange): HTMLTableRowElement {
  const tr = h(
    "tr",
    { testid: "whatif-conn" },
    h("td", { text: c.flow }),
    h("td", { text: `#${c.id}` }),
    h("td", { class: "mono", text: `${c.from} → ${c.to}` }),
    outcome(c.before, c.after),
    h("td", { class: "why", testid: "whatif-why-before", text: c.whyBefore || "—" }),
    h("td", { class: "why", testid: "whatif-why-after", text: c.whyAfter || "—" }),
  );
  tr.dataset.flow = c.flow;
  tr.dataset.id = String(c.id);
  return tr;
}

function probeRow(c: CellChange): HTMLTableRowElement {
  return h(
    "tr",
    { testid: "whatif-probe" },
    h("td", { text: `${c.protocol}/${c.port}` }),
    h("td", { text: `${c.from} → ${c.to}` }),
    outcome(c.before.result, c.after.result),
    h("td", { class: "why", testid: "whatif-why-before", text: c.before.why ?? c.before.error ?? "—" }),
    h("td", { class: "why", testid: "whatif-why-after", text: c.after.why ?? c.after.error ?? "—" }),
  );
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
    const head = ["flow", "conn", "from → to", "outcome", "why, before", "why, after"];
    out.push(table("Connections whose outcome changed", head, d.connections.map(connRow), "whatif-conns"));
  }
  if (d.probes.length > 0) {
    const head = ["port", "from → to", "probe", "why, before", "why, after"];
    out.push(table("Probes whose outcome changed", head, d.probes.map(probeRow), "whatif-probes"));
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
