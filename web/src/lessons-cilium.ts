// Lesson 15: Cilium's identity-based and L7 policy. Pods are judged by security identity
// (from their labels), not by address; HTTP rules go through the node's proxy, which
// terminates the client's connection and opens its own to the backend.
import type { Lesson } from "./lesson-types";
import { isSyn } from "./lesson-types";

export const CILIUM_LESSON: Lesson = {
  id: "cilium",
  title: "15. Identity-based and L7 policy",
  claim:
    "Cilium enforces identity-based security policies rather than IP-based ones, and L7 rules: a proxy on the node reads each HTTP request.",
  unavailable: "The Cilium policy example (examples/cilium-l7.yaml) is not bundled in this build.",
  steps: [
    {
      title: "Identities, not addresses",
      example: "cilium-l7",
      text:
        "Every pod gets a security identity from its labels: the client (app=client) is 256, the backend (app=web) 258, as the pods show. " +
        "The CiliumNetworkPolicy becomes entries of the backend's policy map, keyed by identity, port and protocol. The client's SYN arrives " +
        "at node-b: the ipcache says 10.244.0.5 is identity 256, and the entry (256, 80/TCP) allows it, through the L7 proxy (port 10000).",
      find: (e) => e.kind === "hook" && e.notes.some((n) => n.startsWith("policy:") && n.includes("allowed by policy map entry")),
      look: ["policy", "topology"],
    },
    {
      title: "No entry for the intruder's identity",
      example: "cilium-l7",
      text:
        "The intruder (app=intruder) has identity 257, and the backend's map has no entry for it: node-b's datapath drops the SYN " +
        "(Policy denied). Had the intruder been restarted with a new address, its identity, and the verdict, would be the same.",
      find: (e) => e.verdict === "drop" && e.notes.some((n) => n.includes("no policy map entry allows")),
      look: ["policy", "packet"],
      node: "node-b",
    },
    {
      title: "The proxy opens its own connection",
      example: "cilium-l7",
      text:
        "node-b hands the client's SYN, unchanged, to its proxy (cilium-envoy-node-b), which completes the handshake itself and reads " +
        "GET /public. A rule allows it: the proxy connects to the backend on a connection of its own, from the client's address but another " +
        "port. The backend's tcpdump never shows the client's port.",
      find: (e) => e.kind === "received" && e.host === "backend" && isSyn(e.packet),
      look: ["tcpdump", "packet"],
      tcpdump: { iface: "backend/eth0", filter: "port 80" },
    },
    {
      title: "GET /admin: 403 from the proxy",
      example: "cilium-l7",
      text:
        "The second request opens a connection the policy map allows, but no HTTP rule matches GET /admin: the proxy answers " +
        "HTTP/1.1 403 Forbidden, Access denied, itself. The backend never sees it; the report gives the status of each request.",
      find: (e) => e.kind === "received" && e.host === "client" && e.conn?.flow === "admin" && e.packet.sport === 80 && e.packet.len > 100,
      look: ["policy", "report"],
      tcpdump: { iface: "backend/eth0", filter: "port 80" },
    },
  ],
  question: {
    ask: "From which source port does the backend see the GET /public request?",
    form: "a port number",
    answer: (c) => {
      const seen = c.report?.flows.find((f) => f.name === "public")?.connections[0]?.seenByBackend;
      return seen ? (seen.split(":")[1] ?? null) : null;
    },
  },
};
