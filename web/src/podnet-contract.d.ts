// TEMPORARY: the podnet-wasm API contract (/tmp/notes/wasm-api.md) until ../pkg exists with its
// generated podnet.d.ts. Delete this file once the package is built.
declare module "podnet" {
  export interface Diagnostic { severity: "error" | "warning"; file: string; line: number | null; column: number | null; message: string; text: string }
  export interface Example { name: string; title: string; yaml: string }
  export function examples(): Example[];
  export function check(yaml: string): Diagnostic[];
  export function version(): string;
  export interface SimOptions { seed?: number; fileName?: string }
  export class Sim {
    constructor(yaml: string, options?: SimOptions);
    free(): void;
    readonly name: string;
    topology(): Topology;
    now(): number;
    nextEventTime(): number | null;
    step(): boolean;
    runUntil(us: number): void;
    runToEnd(limitUs?: number): boolean;
    finished(): boolean;
    eventCount(): number;
    events(from: number, to?: number): SimEvent[];
    report(): Report;
    summary(): string;
    traceText(flow: string, conn: number): string;
    explain(flow: string, conn: number): string;
    conntrack(node: string): ConntrackEntry[];
    conntrackText(node: string): string;
    rules(node: string): string;
    tcpdump(iface: string, filter: string): string[];
    pcap(iface: string): Uint8Array;
    interfaces(): string[];
  }
  export interface Topology {
    cluster: { name: string; cni: string; proxy: string; podCidr: string; serviceCidr: string };
    nodes: { name: string; ip: string; podCidr: string; role: "node" | "edge"; interfaces: string[]; pods: string[] }[];
    pods: { name: string; namespace: string; ip: string; node: string; labels: Record<string, string> }[];
    services: { name: string; namespace: string; clusterIp: string; ports: { name: string | null; port: number; targetPort: number; protocol: string; nodePort: number | null }[]; backends: string[] }[];
    externals: { name: string; ip: string }[];
    links: { a: string; b: string }[];
    flows: { name: string; from: string[]; to: string; port: number; protocol: string }[];
  }
  export interface PacketInfo {
    proto: "tcp" | "udp" | "icmp" | "arp" | "other";
    src: string; dst: string; sport: number | null; dport: number | null;
    flags: string | null; len: number; vxlan: PacketInfo | null; line: string;
  }
  export interface SimEvent {
    index: number; time: number; kind: "sent" | "received" | "dropped" | "hook";
    iface: string; host: string;
    hook: "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING" | null;
    verdict: "accept" | "drop" | "reject" | null; reason: string | null;
    packet: PacketInfo; after: PacketInfo | null; notes: string[];
    conn: { flow: string; id: number } | null;
  }
  export interface ConntrackEntry {
    proto: string; state: string | null; timeout: number; assured: boolean; unreplied: boolean;
    orig: { src: string; dst: string; sport: number; dport: number };
    reply: { src: string; dst: string; sport: number; dport: number };
    text: string;
  }
  export type Report = unknown;
  export default function init(input?: unknown): Promise<unknown>;
}
