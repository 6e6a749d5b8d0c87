// Lessons 5-8: the cluster under the Service. Pod addresses from each node's slice of the
// cluster CIDR, the ClusterIP in front of pods that come and go, the CNI's veth, bridge and
// routes (and the VXLAN overlay), and endpoints that follow the pods.
import type { Lesson } from "./lesson-types";
import { isSyn, rewritten } from "./lesson-types";
import type { SimEvent } from "./podnet";

const CLUSTER_IP = "10.96.0.10";
const MS = 1000;
const S = 1_000_000;

/** node-a's DNAT of a new connection to the Service (a SYN) on `port`, after `t` µs. */
const dnatAfter =
  (t: number, port: number) =>
  (e: SimEvent): boolean =>
    rewritten(e) && e.host === "node-a" && isSyn(e.packet) && e.packet.dst === CLUSTER_IP && e.packet.dport === port && e.time > t;

export const CLUSTER_LESSONS: Lesson[] = [
  {
    id: "pod-cidr",
    title: "5. Pod IPs come from the node's slice",
    claim: "Each pod gets its own IP from the cluster's address space, 10.244.0.0/16: each node hands out addresses from its own slice.",
    steps: [
      {
        title: "web-1 on node-b",
        example: "pod-replaced",
        text:
          "No pod of this scenario names its address. The cluster CIDR is 10.244.0.0/16 and each node owns a /24 of it: node-a 10.244.0.0/24, " +
          "node-b 10.244.1.0/24 (written under each node in the topology). The CNI's IPAM gives a new pod the first free address of its node's slice " +
          "(.1 is the node's cni0 bridge).\n\n" +
          "The selected SYN is the first packet web-1 receives: its destination is web-1's own address.",
        find: (e) => e.kind === "received" && e.host === "web-1" && isSyn(e.packet),
        look: ["topology", "packet"],
      },
      {
        title: "web-0 and the client on node-a",
        example: "pod-replaced",
        text:
          "On node-a the client came first and took 10.244.0.2, web-0 the next one. A packet between the two nodes is routed by its destination's slice: " +
          "node-a's route for 10.244.1.0/24 points at node-b (host-gw), so the pod's address says where it lives.",
        find: (e) => e.kind === "received" && e.host === "web-0" && isSyn(e.packet),
        look: ["topology", "packet"],
      },
    ],
    question: {
      ask: "From which node slice (a CIDR) does web-0's address come?",
      form: "a CIDR, e.g. 10.0.0.0/24",
      answer: (c) => c.topology.nodes.find((n) => n.pods.includes(c.event.host))?.podCidr ?? null,
    },
  },
  {
    id: "clusterip",
    title: "6. The ClusterIP stays, the pods behind it change",
    claim: "A Service's ClusterIP is a stable virtual IP in front of a set of pods that comes and goes.",
    steps: [
      {
        title: "Two replicas behind 10.96.0.10",
        example: "pod-replaced",
        text:
          "Deployment web runs two replicas, web-0 (node-a) and web-1 (node-b), behind Service web, ClusterIP 10.96.0.10. The client " +
          "only knows the ClusterIP; node-a's KUBE-SVC chain picks one of the two endpoints for each new connection.",
        find: dnatAfter(0, 80),
        look: ["rules", "packet"],
        node: "node-a",
      },
      {
        title: "web-1 is deleted: one endpoint left",
        example: "pod-replaced",
        text:
          "At 1 s web-1 is deleted. kube-proxy rewrites node-a's rules at once: KUBE-SVC now has a single KUBE-SEP, and every new connection to " +
          "the same ClusterIP goes to web-0. The client changes nothing.",
        find: dnatAfter(1 * S, 80),
        look: ["rules", "packet"],
        node: "node-a",
      },
      {
        title: "Scaled to three: a new pod, a new address",
        example: "pod-replaced",
        text:
          "At 2.2 s the Deployment is scaled to three. web-1 comes back on node-b with a new address (like the host-local IPAM plugin, the node " +
          "hands out the address after the last one it gave, not the freed one) and web-2 starts on node-a, also with an address no pod had at the start. " +
          "The selected connection is the first one sent to a pod that did not exist when the run began: same ClusterIP, new pod.",
        find: (e, c) => dnatAfter(2200 * MS, 80)(e) && !c.topology.pods.some((p) => p.ip === (e.after?.dst ?? "")),
        look: ["packet", "rules"],
        node: "node-a",
      },
    ],
    question: {
      ask: "Which pod IP, new since the start, did node-a pick behind 10.96.0.10?",
      form: "an IP address",
      answer: (c) => c.event.after?.dst ?? null,
    },
  },
  {
    id: "cni",
    title: "7. The CNI: veth, bridge, routes, or a VXLAN overlay",
    claim: "The CNI plugin gives each pod a veth pair, and connects the nodes with routes or an overlay network.",
    steps: [
      {
        title: "veth, cni0 and a route (host-gw)",
        example: "seed",
        text:
          "Follow the SYN's hops in the packet panel: out of pod-a's eth0, into node-a through the other end of its veth pair, across the cni0 " +
          "bridge, through netfilter, and out of node-a's eth0. The inner addresses go on the wire as they are: the underlay knows the route " +
          "10.244.1.0/24 via 192.168.1.101 (flannel's host-gw backend), so no encapsulation is needed.",
        find: (e) => e.kind === "sent" && e.iface === "node-a/eth0" && isSyn(e.packet) && e.conn !== null,
        look: ["packet", "topology"],
      },
      {
        title: "The same SYN over VXLAN",
        example: "vxlan",
        text:
          "With flannel's VXLAN backend (cni: vxlan) node-a routes 10.244.1.0/24 to flannel.1, which wraps the whole frame in UDP: the outer header " +
          "goes from node to node (192.168.1.100 -> 192.168.1.101), the inner one is the pod's packet, untouched. Pods get MTU 1450 for the 50 bytes " +
          "of the outer headers, so the SYN offers MSS 1410. The packet panel shows the outer and inner headers side by side.",
        find: (e) => e.kind === "sent" && e.iface === "node-a/eth0" && e.packet.vxlan !== null && isSyn(e.packet.vxlan),
        look: ["packet", "topology"],
      },
    ],
    question: {
      ask: "Which UDP destination port carries the VXLAN packet between the nodes?",
      form: "a port number",
      answer: (c) => (c.event.packet.vxlan && c.event.packet.dport !== null ? String(c.event.packet.dport) : null),
    },
  },
  {
    id: "endpoints",
    title: "8. Endpoints follow the pods",
    claim: "kube-proxy watches the EndpointSlices: when a backend pod goes, its endpoint leaves and new connections go to the pods left.",
    steps: [
      {
        title: "A long upload to web-1",
        example: "pod-replaced",
        text:
          "The client starts a long upload to the Service's port 9 at time 0; node-a's DNAT sends it to web-1 on node-b, and conntrack on node-a " +
          "remembers that choice for the life of the connection.",
        find: dnatAfter(0, 9),
        look: ["conntrack", "packet"],
        node: "node-a",
      },
      {
        title: "web-1 dies mid-upload",
        example: "pod-replaced",
        text:
          "At 1 s web-1 is deleted while the upload goes on. node-a's conntrack entry still sends its segments to web-1's address, but " +
          "node-b's bridge forgot web-1's MAC with its veth: this segment leaves cni0 for no port and is gone (one already on the veth " +
          "when the pod went is dropped as 'pod deleted'). The Service loses the endpoint, and node-a's rules lose its KUBE-SEP chain.",
        find: (e) =>
          (e.kind === "dropped" && (e.reason ?? "").includes("pod deleted")) ||
          (e.kind === "sent" && e.iface === "node-b/cni0" && e.packet.dport === 9 && e.time > 1 * S),
        look: ["events", "packet"],
      },
      {
        title: "New connections go elsewhere",
        example: "pod-replaced",
        text:
          "The next GET after the deletion is DNATed to the only endpoint left: its rules panel shows one KUBE-SEP for the Service's port 80.",
        find: dnatAfter(1 * S, 80),
        look: ["rules", "packet"],
        node: "node-a",
      },
      {
        title: "The old connection still points at the dead pod",
        example: "pod-replaced",
        text:
          "The upload is not moved: its retransmission at 2 s matches the conntrack entry, which still DNATs it to web-1's address, where no pod " +
          "answers. The client retries until its 3 s timeout (the report says timeout): an endpoint leaving does not rescue the connections " +
          "already made to it.",
        find: (e) => rewritten(e) && e.host === "node-a" && e.conn?.flow === "upload" && e.time > 1500 * MS,
        look: ["conntrack", "packet"],
        node: "node-a",
      },
    ],
    question: {
      ask: "To which pod IP does node-a's conntrack still send the upload's retransmission?",
      form: "an IP address",
      answer: (c) => c.event.after?.dst ?? null,
    },
  },
];
