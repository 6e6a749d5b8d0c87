// The one place the page touches the wasm package: everything comes from `podnet` (../pkg).
export { default as init, Sim, examples, check, version, whatIf } from "podnet";
export type { SimEvent, Flight, Flights, TcpdumpTail, PacketInfo, Topology, ConntrackHead, Diagnostic, Example, Report, Flow, NodeReport, Diff, ConnChange, CellChange } from "podnet";
