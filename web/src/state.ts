// The page's state: the timeline of the loaded scenario (store.ts, over the wasm module),
// the time shown, the selected packet and the views' choices. Views read it and render;
// the controllers (clock.ts, load.ts, selection.ts, lesson-view.ts) change it.
import type { Example, SimEvent, Topology } from "./podnet";
import type { FlightTracker } from "./packets";
import type { Timeline } from "./store";
import type { TopologyView } from "./topology";

export interface Selection {
  event: SimEvent;
  conn: { flow: string; id: number } | null;
  /** Every hop of the selected packet, in order. */
  journey: SimEvent[];
  /** The connection's events around the packet. */
  connEvents: SimEvent[];
  /** Address pairs the connection was seen with ("src:sport>dst:dport"). */
  tuples: Set<string>;
  /** iptables-save lines matched on the way, per node. */
  rules: Map<string, Set<string>>;
}

/** The key of a connection in `app.whatIfChanged`. */
export const connKey = (flow: string, id: number | string): string => `${flow}#${id}`;

export const app = {
  bundled: [] as Example[],
  tl: null as Timeline | null,
  /** The scenario's topology at time 0. */
  topology: null as Topology | null,
  topoView: null as TopologyView | null,
  flights: null as FlightTracker | null,
  /** Pods and external hosts: where a packet's journey starts and ends. */
  podHosts: new Set<string>(),
  nodeNames: [] as string[],
  /** Displayed virtual time (µs). */
  T: 0,
  /** The time a replay in progress is heading for (the display still shows T). */
  replayTarget: null as number | null,
  playing: false,
  /** Virtual µs per wall second. */
  speed: 100,
  /** Frames on the wires at the time shown. */
  inFlight: 0,
  needsDraw: true,
  /** When the panels were last rendered (wall ms). */
  lastPanels: 0,
  /** Frames delivered when the panels were last rendered while playing. */
  lastPanelCount: -1,
  /** Whether a panel was left stale by refresh() and waits for its turn. */
  skippedPanels: false,
  panelsDirty: true,
  selected: null as Selection | null,
  /** The timeline epoch the selection was made in (its event indices). */
  selEpoch: 0,
  ctNode: "",
  rulesNode: "",
  tcpdumpIface: "any",
  tcpdumpFilter: "",
  /** The connections (`flow#id`) whose outcome changes in the last What if, marked in the report. */
  whatIfChanged: new Set<string>(),
};
