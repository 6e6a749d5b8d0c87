// Lessons 9, 10, 12 and 13: the edges of the cluster and of its tables. Traffic leaving the
// cluster, NetworkPolicy deciding which connections open, a full conntrack table, and a
// NodePort called from outside.
import type { Lesson } from "./lesson-types";
import { isSyn, snat } from "./lesson-types";

export const EGRESS_LESSON: Lesson = {
  id: "egress",
  title: "9. Leaving the cluster: SNAT to the node",
  claim: "Traffic leaving the node gets the node's IP as its source, because the outside network cannot route back to a pod IP.",
  steps: [
    {
      title: "MASQUERADE on the way out",
      example: "egress-to-internet",
      text:
        "A pod calls a host outside the cluster. The outside network has no route back to 10.244.0.0/16, so in POSTROUTING " +
        "flannel's rule `-s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE` rewrites the source to the node's own address 192.168.1.100 and picks a port " +
        "(--random-fully).",
      find: (e) => snat(e) && e.hook === "POSTROUTING" && isSyn(e.packet),
      look: ["rules", "packet", "conntrack"],
    },
    {
      title: "The outside host sees the node",
      example: "egress-to-internet",
      text:
        "The SYN reaches the external host from 192.168.1.100 and the port node-a chose: the pod's address never leaves the node. " +
        "The reply comes back to the node, and conntrack turns it back into the pod's.",
      find: (e) => e.kind === "received" && e.host === "internet" && isSyn(e.packet),
      look: ["packet", "topology"],
    },
  ],
  question: {
    ask: "Which source port does the external host see on the SYN?",
    form: "a port number",
    answer: (c) => (c.event.packet.sport !== null ? String(c.event.packet.sport) : null),
  },
};

export const POLICY_LESSON: Lesson = {
  id: "policy",
  title: "10. NetworkPolicy decides which connections open",
  claim: "NetworkPolicy objects act as firewall rules at the pod level: they decide which TCP connections can be established.",
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
        "The intruder (role=other) is not admitted by any policy: its SYN is dropped in FORWARD on the backend's node. The client retransmits and " +
        "finally sees a timeout; the report's outcome is denied. No connection ever opens, so no application data is at risk.",
      find: (e) => e.verdict === "drop" && e.notes.some((n) => n.startsWith("NetworkPolicy:")),
      look: ["policy", "packet", "report"],
      node: "node-b",
    },
  ],
  question: {
    ask: "On which node is the intruder's SYN dropped?",
    form: "a node name",
    answer: (c) => c.event.host,
  },
};

export const FULL_TABLE_LESSON: Lesson = {
  id: "full",
  title: "12. A full conntrack table drops new connections",
  claim: "When a node's conntrack table is full, new connections fail while the established ones go on.",
  steps: [
    {
      title: "A table of 4 entries",
      example: "conntrack-full",
      text:
        "node-a's conntrack table holds only 4 entries here (conntrack.max: 4). An upload and three GETs fill it; closed GETs stay in TIME_WAIT for 120 s.",
      find: (e) => e.kind === "received" && e.host === "client" && e.conn?.flow === "gets" && e.conn.id === 2 && e.packet.flags === "F.",
      look: ["conntrack"],
      node: "node-a",
    },
    {
      title: "nf_conntrack: table full, dropping packet",
      example: "conntrack-full",
      text:
        "The next SYN finds no free entry and no unassured entry to evict: the kernel drops it before any rule is walked, and counts it in the " +
        "table's drop counter. The client retries, and times out, while the established upload goes on (its packets match an existing entry).",
      find: (e) => (e.kind === "dropped" || e.verdict === "drop") && (e.reason ?? "").includes("table full"),
      look: ["conntrack", "packet", "events"],
      node: "node-a",
    },
  ],
  question: {
    ask: "How many packets has node-a's table dropped so far (its drop counter)?",
    form: "a number",
    answer: (c) => {
      const stats = c.report?.nodes.find((n) => n.name === c.event.host)?.conntrack?.stats;
      return stats ? String(stats.drop) : null;
    },
  },
};

export const NODEPORT_LESSON: Lesson = {
  id: "nodeport",
  title: "13. A NodePort from outside: DNAT and SNAT on one packet",
  claim: "Traffic entering through a node is translated twice when the backend is elsewhere: destination to the pod, source to the node.",
  steps: [
    {
      title: "externalTrafficPolicy: Cluster",
      example: "nodeport",
      text:
        "An external host calls node-a's NodePort. externalTrafficPolicy Cluster lets node-a forward to a backend on another node, " +
        "so kube-proxy marks the packet for masquerade: the destination becomes the backend pod and the source becomes node-a. " +
        "The backend never learns the client's address.",
      find: (e) => snat(e) && e.hook === "POSTROUTING" && isSyn(e.packet),
      look: ["packet", "rules"],
    },
    {
      title: "externalTrafficPolicy: Local keeps the source",
      example: "nodeport",
      text:
        "With externalTrafficPolicy Local the node only sends to a local backend and does not masquerade: the backend sees the external client's real address.",
      find: (e) => e.kind === "received" && e.host === "backend" && isSyn(e.packet) && e.packet.src === "203.0.113.10",
      look: ["packet"],
    },
  ],
  question: {
    ask: "With externalTrafficPolicy Local, which source address does the backend see?",
    form: "an IP address",
    answer: (c) => c.event.packet.src,
  },
};
