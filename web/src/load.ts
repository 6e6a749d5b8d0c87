// Loading a scenario: check it, build its timeline (store.ts), draw its topology and reset
// the views.
import { $, errorText, h, setStatus } from "./dom";
import { gDrops, gStatic, svg } from "./draw";
import { YamlEditor } from "./editor";
import { fitStage } from "./layout";
import { FlightTracker } from "./packets";
import { renderPacket } from "./packet-view";
import { renderNodeTabs } from "./panels";
import { check } from "./podnet";
import { app } from "./state";
import { Timeline } from "./store";
import { TopologyView, drawnTopology } from "./topology";
import { clearWhatIf } from "./whatif";

export const editor = new YamlEditor($<HTMLTextAreaElement>("yaml"), $("gutter"), $("inline-errors"), $("yaml-errors"));

/** Load YAML text into the page. Returns false (errors shown inline) when it does not load. */
export function load(yaml: string): boolean {
  const diags = check(yaml);
  editor.show(diags);
  if (diags.some((d) => d.severity === "error")) {
    setStatus("the scenario has errors: see the editor", "error");
    return false;
  }
  let next: Timeline;
  try {
    // `?checkpoints=N` parks N Sims along the run whatever its cost (0: none).
    const asked = new URLSearchParams(location.search).get("checkpoints");
    next = new Timeline(yaml, asked !== null ? { checkpoints: Number(asked) } : {});
  } catch (e) {
    editor.show([
      { severity: "error", file: "scenario.yaml", line: null, column: null, message: errorText(e), text: errorText(e) },
    ]);
    setStatus("the scenario did not load", "error");
    return false;
  }
  app.tl?.free();
  app.tl = next;
  delete document.body.dataset.checkpoints;
  app.T = 0;
  app.replayTarget = null;
  app.playing = false;
  app.selected = null;
  clearWhatIf();
  const topo = app.tl.topology();
  app.topology = topo;
  gStatic.replaceChildren();
  gDrops.replaceChildren();
  app.topoView = new TopologyView(topo, gStatic);
  svg.setAttribute("viewBox", `0 0 ${app.topoView.width} ${app.topoView.height}`);
  svg.style.aspectRatio = `${app.topoView.width} / ${app.topoView.height}`;
  app.flights = new FlightTracker();
  app.lastPanelCount = -1;
  gDrops.dataset.key = "";
  app.podHosts = new Set([...topo.pods.map((p) => p.name), ...topo.externals.map((e) => e.name)]);
  app.nodeNames = topo.nodes.filter((n) => n.role === "node").map((n) => n.name);
  document.body.dataset.drawnNodes = drawnTopology(topo).nodes.map((n) => n.name).join(",");
  if (!app.nodeNames.includes(app.ctNode)) app.ctNode = app.nodeNames[0] ?? "";
  if (!app.nodeNames.includes(app.rulesNode)) app.rulesNode = app.nodeNames[0] ?? "";
  const ifaces = ["any", ...app.tl.interfaces()];
  if (!ifaces.includes(app.tcpdumpIface)) app.tcpdumpIface = "any";
  const sel = $<HTMLSelectElement>("tcpdump-iface");
  sel.replaceChildren(...ifaces.map((i) => h("option", { text: i })));
  sel.value = app.tcpdumpIface;
  renderNodeTabs();
  setStatus(`loaded ${app.tl.name}: ${topo.nodes.length} nodes, ${topo.pods.length} pods, ${topo.services.length} services (${topo.cluster.proxy})`);
  document.body.dataset.loaded = app.tl.name;
  app.needsDraw = true;
  app.panelsDirty = true;
  renderPacket();
  fitStage();
  return true;
}

export function loadExample(name: string): boolean {
  const ex = app.bundled.find((e) => e.name === name);
  if (!ex) return false;
  editor.value = ex.yaml;
  $<HTMLSelectElement>("example-select").value = name;
  return load(ex.yaml);
}
