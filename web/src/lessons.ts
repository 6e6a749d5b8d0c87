// Guided lessons: the seed document's story, one step at a time. Each step names the
// bundled example it runs, the packet to select (the first trace event matching `find`;
// the timeline moves to that event's time), and what to look at.
import type { PacketInfo, SimEvent } from "./podnet";

export type Panel = "packet" | "conntrack" | "rules" | "policy" | "tcpdump" | "events" | "report" | "topology";

export interface LessonStep {
  title: string;
  /** HTML-free text; blank lines separate paragraphs. */
  text: string;
  /** Name of a bundled example (examples()[].name), or a matcher over the names. */
  example: string | RegExp;
  /** The event to select; the timeline jumps to its time. */
  find: (e: SimEvent) => boolean;
  /** The panels to look at, highlighted when the step opens. */
  look: Panel[];
  /** Node whose conntrack table and rules to show (default: where the selected event is). */
  node?: string;
}

export interface Lesson {
  id: string;
  title: string;
  steps: LessonStep[];
  /** Shown instead of the steps when no bundled example matches. */
  unavailable?: string;
}

const addr = (ip: string, port: number | null): string => (port === null ? ip : `${ip}:${port}`);
export const srcOf = (p: PacketInfo): string => addr(p.src, p.sport);
export const dstOf = (p: PacketInfo): string => addr(p.dst, p.dport);

const isSyn = (p: PacketInfo): boolean => p.proto === "tcp" && p.flags === "S";
const isSynAck = (p: PacketInfo): boolean => p.proto === "tcp" && p.flags === "S.";
const rewritten = (e: SimEvent): e is SimEvent & { after: PacketInfo } => e.kind === "hook" && e.after !== null;

export const LESSONS: Lesson[] = [
  {
    id: "dnat",
    title: "1. A ClusterIP is rewritten (DNAT)",
    steps: [
      {
        title: "Pod A calls Service S",
        example: "seed",
        text:
          "Pod A (10.244.0.5, on node-a 192.168.1.100) opens a TCP connection to Service web, ClusterIP 10.96.0.10 port 80. " +
          "No machine owns 10.96.0.10: it is a virtual IP that only exists in node-a's kube-proxy rules.\n\n" +
          "The selected packet is Pod A's SYN leaving its eth0: destination 10.96.0.10:80.",
        find: (e) => e.kind === "sent" && e.host === "pod-a" && isSyn(e.packet) && e.packet.dst === "10.96.0.10",
        look: ["packet", "topology"],
      },
      {
        title: "kube-proxy's DNAT in PREROUTING",
        example: "seed",
        text:
          "On node-a the SYN enters the netfilter PREROUTING hook. The nat table jumps KUBE-SERVICES -> KUBE-SVC-… -> KUBE-SEP-…, " +
          "whose DNAT rule rewrites the destination 10.96.0.10:80 to the backend pod 10.244.1.20:80.\n\n" +
          "The packet panel shows the header before -> after with the changed field marked; the rules panel lights the exact iptables-save lines that matched; " +
          "conntrack on node-a now holds the entry that remembers the translation.",
        find: (e) => rewritten(e) && e.host === "node-a" && e.packet.dst === "10.96.0.10" && e.after.dst === "10.244.1.20",
        look: ["packet", "rules", "conntrack"],
        node: "node-a",
      },
      {
        title: "The backend sees the pod, not the Service",
        example: "seed",
        text:
          "The SYN arrives at the backend 10.244.1.20 on node-b. Its destination is the backend's own address; the source is still Pod A's 10.244.0.5 " +
          "(no SNAT: masquerade.all is false, and pod-to-pod traffic is not masqueraded).",
        find: (e) => e.kind === "received" && e.host === "backend" && isSyn(e.packet),
        look: ["packet", "topology"],
      },
    ],
  },
  {
    id: "snat",
    title: "2. SNAT to the node (masquerade)",
    steps: [
      {
        title: "Pod traffic leaving the cluster",
        example: "egress-to-internet",
        text:
          "A pod calls a host outside the cluster. The outside network has no route back to 10.244.0.0/16, so in POSTROUTING " +
          "flannel's MASQUERADE rule rewrites the source to the node's own address 192.168.1.100 and picks a port (--random-fully).\n\n" +
          "Look at the source change in the packet panel and the lit MASQUERADE rule.",
        find: (e) => rewritten(e) && e.hook === "POSTROUTING" && e.packet.src !== e.after.src,
        look: ["packet", "rules", "conntrack"],
      },
      {
        title: "A NodePort: DNAT and SNAT on one packet",
        example: "nodeport",
        text:
          "An external host calls node-a's NodePort. externalTrafficPolicy Cluster lets node-a forward to a backend on another node, " +
          "so kube-proxy marks the packet for masquerade: the destination becomes the backend pod and the source becomes node-a. " +
          "The backend never learns the client's address.",
        find: (e) => rewritten(e) && e.hook === "POSTROUTING" && e.packet.src !== e.after.src && isSyn(e.packet),
        look: ["packet", "rules"],
      },
      {
        title: "externalTrafficPolicy: Local keeps the source",
        example: "nodeport",
        text:
          "With externalTrafficPolicy Local the node only sends to a local backend and does not masquerade: the backend sees the external client's real address 203.0.113.10.",
        find: (e) => e.kind === "received" && e.host === "backend" && isSyn(e.packet) && e.packet.src === "203.0.113.10",
        look: ["packet"],
      },
    ],
  },
  {
    id: "conntrack",
    title: "3. conntrack reverses the reply",
    steps: [
      {
        title: "The reply leaves the backend",
        example: "seed",
        text:
          "The backend answers with a SYN-ACK from 10.244.1.20:80. Pod A never sent anything to that address: " +
          "if the reply arrived as it is, Pod A's TCP would not recognise it.",
        find: (e) => e.kind === "sent" && e.host === "backend" && isSynAck(e.packet),
        look: ["packet", "topology"],
      },
      {
        title: "node-a undoes the DNAT",
        example: "seed",
        text:
          "On node-a the reply matches the conntrack entry created for the SYN (its reply tuple src=10.244.1.20 dst=10.244.0.5). " +
          "No nat rule is walked (the filter table only lets ESTABLISHED traffic through KUBE-FORWARD): conntrack alone rewrites the source back to 10.96.0.10:80 in POSTROUTING. " +
          "The highlighted row in node-a's table is this connection.",
        find: (e) => rewritten(e) && e.host === "node-a" && e.packet.src === "10.244.1.20" && e.after.src === "10.96.0.10",
        look: ["packet", "conntrack"],
        node: "node-a",
      },
      {
        title: "Pod A hears the Service",
        example: "seed",
        text: "The SYN-ACK reaches Pod A from 10.96.0.10:80, exactly where it sent the SYN. The handshake completes through the virtual IP.",
        find: (e) => e.kind === "received" && e.host === "pod-a" && isSynAck(e.packet),
        look: ["packet", "tcpdump"],
      },
    ],
  },
  {
    id: "full",
    title: "4. A full conntrack table drops new connections",
    steps: [
      {
        title: "A table of 4 entries",
        example: "conntrack-full",
        text:
          "node-a's conntrack table holds only 4 entries here (conntrack.max: 4). An upload and three GETs fill it; closed GETs stay in TIME_WAIT for 120 s.",
        find: (e) =>
          e.kind === "received" && e.host === "client" && e.conn?.flow === "gets" && e.conn.id === 2 && e.packet.flags === "F.",
        look: ["conntrack"],
        node: "node-a",
      },
      {
        title: "nf_conntrack: table full, dropping packet",
        example: "conntrack-full",
        text:
          "The next SYN finds no free entry and no unassured entry to evict: the kernel drops it before any rule is walked. " +
          "The client retries, and times out, while the established upload goes on (its packets match an existing entry).",
        find: (e) => (e.kind === "dropped" || e.verdict === "drop") && (e.reason ?? "").includes("table full"),
        look: ["packet", "conntrack", "events"],
        node: "node-a",
      },
    ],
  },
  {
    id: "ebpf",
    title: "5. Cilium's eBPF skips iptables",
    unavailable:
      "The eBPF dataplane (proxy: ebpf) is not in this build: no bundled example uses it. This lesson appears when an examples/*ebpf*.yaml is bundled.",
    steps: [
      {
        title: "No ClusterIP on the wire",
        example: /ebpf/,
        text:
          "The seed again, with proxy: ebpf. Cilium's socket-level load balancer translates Pod A's connect(10.96.0.10:80) to the backend " +
          "before any packet exists: the very first SYN already goes to 10.244.1.20:80, and no packet anywhere carries 10.96.0.10 " +
          "(open \"the whole connection\" for the trace: its first line is the cgroup/connect4 decision).",
        find: (e) => e.kind === "sent" && isSyn(e.packet) && e.conn !== null && e.packet.dst.startsWith("10.244."),
        look: ["packet", "tcpdump"],
      },
      {
        title: "node-a walks no iptables rule",
        example: /ebpf/,
        text:
          "On node-a the SYN meets bpf_lxc, the program on the pod's interface: it creates an entry in Cilium's own conntrack map and nothing else. " +
          "There are no KUBE-* chains: the rules panel shows the Services as entries of the eBPF load-balancer map, and the conntrack panel shows the bpf ct map.",
        find: (e) => e.kind === "hook" && e.notes.some((n) => n.startsWith("bpf_lxc: CT: new entry")),
        look: ["packet", "rules", "conntrack"],
        node: "node-a",
      },
      {
        title: "A NodePort balanced per packet",
        example: /ebpf/,
        text:
          "From outside, the NodePort 192.168.1.100:30080 is translated by bpf_host on node-a's uplink (Maglev picks the backend): destination " +
          "rewritten to 10.244.1.20:80, source kept. In DSR mode node-a passes the service address along in an IP option.",
        find: (e) => rewritten(e) && e.notes.some((n) => n.includes("lb4: service")),
        look: ["packet"],
      },
      {
        title: "The backend's node answers directly (DSR)",
        example: /ebpf/,
        text:
          "The reply does not go back through node-a: node-b reverses the translation itself (source 10.244.1.20:80 becomes 192.168.1.100:30080) " +
          "and sends it straight to the client. Same principle as kube-proxy, destination and source translation, done in other places.",
        find: (e) => rewritten(e) && e.notes.some((n) => n.includes("reverse NAT")),
        look: ["packet", "topology"],
      },
    ],
  },
  {
    id: "policy",
    title: "6. A NetworkPolicy blocks a connection",
    steps: [
      {
        title: "The frontend is allowed",
        example: "network-policy",
        text:
          "The backend is selected by default-deny (ingress) and by allow-frontend, which admits pods labelled role=frontend on port http. " +
          "pod-a is a frontend: its SYN is judged after DNAT, against the backend pod and port 80, and allowed.",
        find: (e) => e.kind === "hook" && e.notes.some((n) => n.startsWith("NetworkPolicy:") && n.includes("allowed by")),
        look: ["policy", "packet"],
      },
      {
        title: "The intruder is dropped",
        example: "network-policy",
        text:
          "The intruder (role=other) is not admitted by any policy: node-b drops its SYN in FORWARD. The client retransmits and finally sees a timeout; the report's outcome is denied.",
        find: (e) => e.verdict === "drop" && e.notes.some((n) => n.startsWith("NetworkPolicy:")),
        look: ["policy", "packet", "report"],
        node: "node-b",
      },
    ],
  },
];
