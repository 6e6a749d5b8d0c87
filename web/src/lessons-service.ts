// Lessons 1-4 and 11: a connection to a Service, as the seed tells it. What the node sees,
// kube-proxy's DNAT, the SNAT to the node with masqueradeAll, Cilium's eBPF instead of
// iptables, and conntrack turning the reply back.
import type { Lesson } from "./lesson-types";
import { isSyn, isSynAck, rewritten, snat } from "./lesson-types";
import type { SimEvent } from "./podnet";

const CLUSTER_IP = "10.96.0.10";
/** node-a masquerading Pod A's SYN on its way out (POSTROUTING). */
const masqueradedSyn = (e: SimEvent): boolean => snat(e) && e.host === "node-a" && e.hook === "POSTROUTING" && isSyn(e.packet);

export const SERVICE_LESSONS: Lesson[] = [
  {
    id: "tcpdump",
    title: "1. tcpdump on the node sees the ClusterIP",
    claim: "On Pod A's node, the kernel sees an outgoing packet destined for the Service IP 10.96.0.10:80.",
    steps: [
      {
        title: "Capture on node-a: host 10.96.0.10 and port 80",
        example: "seed",
        text:
          "Pod A (10.244.0.5) opens a connection to Service web, ClusterIP 10.96.0.10 port 80. Its SYN leaves the pod's eth0 and enters node-a " +
          "through the node's end of the pod's veth pair.\n\n" +
          "The tcpdump panel captures on that interface with the seed's filter, `host 10.96.0.10 and port 80`: node-a's kernel sees the packet " +
          "addressed to the virtual IP, before any rule has touched it.",
        find: (e) => e.kind === "received" && e.host === "node-a" && isSyn(e.packet) && e.packet.dst === CLUSTER_IP,
        look: ["tcpdump", "packet"],
        tcpdump: { iface: "event", filter: `host ${CLUSTER_IP} and port 80` },
      },
    ],
    question: {
      ask: "Which destination IP address does the captured SYN carry?",
      form: "an IP address",
      // The destination of the last line the capture printed: the selected SYN.
      answer: (c) => {
        const lines = c.tcpdump(c.event.iface, `host ${CLUSTER_IP} and port 80`);
        const m = / > (\d+\.\d+\.\d+\.\d+)\.\d+: /.exec(lines[lines.length - 1] ?? "");
        return m ? m[1]! : null;
      },
    },
  },
  {
    id: "dnat",
    title: "2. DNAT: the ClusterIP becomes a backend pod",
    claim: "The destination 10.96.0.10 is rewritten to the IP of one of the Service's backend pods, 10.244.1.20.",
    steps: [
      {
        title: "Pod A calls Service S",
        example: "seed",
        text:
          "Pod A (10.244.0.5, on node-a 192.168.1.100) opens a TCP connection to Service web, ClusterIP 10.96.0.10 port 80. " +
          "No machine owns 10.96.0.10: it is a virtual IP that only exists in node-a's kube-proxy rules.\n\n" +
          "The selected packet is Pod A's SYN leaving its eth0: destination 10.96.0.10:80.",
        find: (e) => e.kind === "sent" && e.host === "pod-a" && isSyn(e.packet) && e.packet.dst === CLUSTER_IP,
        look: ["packet", "topology"],
      },
      {
        title: "kube-proxy's DNAT in PREROUTING",
        example: "seed",
        text:
          "On node-a the SYN enters the netfilter PREROUTING hook. The nat table jumps KUBE-SERVICES -> KUBE-SVC-… -> KUBE-SEP-…, " +
          "whose DNAT rule rewrites the destination 10.96.0.10:80 to the backend pod 10.244.1.20:80.\n\n" +
          "The rules panel lights the exact iptables-save lines that matched; the packet panel shows the header before -> after " +
          "with the changed field marked; conntrack on node-a now holds the entry that remembers the translation.",
        find: (e) => rewritten(e) && e.host === "node-a" && e.packet.dst === CLUSTER_IP && e.after.dst === "10.244.1.20",
        look: ["rules", "packet", "conntrack"],
        node: "node-a",
      },
      {
        title: "The backend sees the pod, not the Service",
        example: "seed",
        text:
          "The SYN arrives at the backend on node-b. Its destination is the backend's own address; the source is still Pod A's 10.244.0.5 " +
          "(no SNAT: masquerade.all is false, and pod-to-pod traffic is not masqueraded; lesson 3 turns it on).",
        find: (e) => e.kind === "received" && e.host === "backend" && isSyn(e.packet),
        look: ["packet", "topology"],
      },
    ],
    question: {
      ask: "Which IP address does the SYN arrive at, now that the DNAT has chosen a backend?",
      form: "an IP address",
      answer: (c) => c.event.packet.dst,
    },
  },
  {
    id: "snat",
    title: "3. SNAT to the node IP, with a port of its choosing",
    claim: "Pod A's source 10.244.0.5 is rewritten to the node's 192.168.1.100 and an ephemeral port when NAT is used.",
    steps: [
      {
        title: "masqueradeAll: every Service connection is marked",
        example: "masquerade-all",
        text:
          "The seed again, with kube-proxy's masqueradeAll (masquerade.all: true). In PREROUTING node-a DNATs the SYN to the backend 10.244.1.20:80 " +
          "as before, and the Service's chain also jumps KUBE-MARK-MASQ: the packet is marked for source NAT.",
        find: (e) => rewritten(e) && e.host === "node-a" && e.hook === "PREROUTING" && isSyn(e.packet) && e.packet.dst === CLUSTER_IP,
        look: ["rules", "packet"],
        node: "node-a",
      },
      {
        title: "MASQUERADE in POSTROUTING",
        example: "masquerade-all",
        text:
          "Leaving node-a, KUBE-POSTROUTING sees the mark and MASQUERADEs: the source becomes node-a's own address 192.168.1.100, and with " +
          "--random-fully the port is a random free one (the seed's 192.168.1.100:54321). The backend will only ever see the node.",
        find: masqueradedSyn,
        look: ["packet", "rules"],
        node: "node-a",
      },
      {
        title: "conntrack remembers both translations",
        example: "masquerade-all",
        text:
          "node-a's conntrack entry for the connection holds the original tuple (10.244.0.5 -> 10.96.0.10:80) and the reply tuple " +
          "(10.244.1.20:80 -> 192.168.1.100:PORT): the reply will be addressed to the node's port, and conntrack alone maps it back to Pod A.",
        find: masqueradedSyn,
        look: ["conntrack", "packet"],
        node: "node-a",
      },
    ],
    question: {
      ask: "Which source port did node-a choose for Pod A's connection?",
      form: "a port number",
      answer: (c) => (c.event.after?.sport != null ? String(c.event.after.sport) : null),
    },
  },
  {
    id: "ebpf",
    title: "4. Cilium's eBPF, without iptables",
    claim: "Cilium's eBPF programs translate Service addresses without iptables, on the same principle of destination and source translation.",
    unavailable: "The eBPF dataplane (proxy: ebpf) has no bundled example in this build (examples/*ebpf*.yaml).",
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
        look: ["rules", "conntrack", "packet"],
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
          "The reply does not go back through node-a: node-b reverses the translation itself and sends it straight to the client. " +
          "Same principle as kube-proxy, destination and source translation, done in other places.",
        find: (e) => rewritten(e) && e.notes.some((n) => n.includes("reverse NAT")),
        look: ["packet", "topology"],
      },
    ],
    question: {
      ask: "Which source address and port does node-b give the reply (address:port)?",
      form: "address:port",
      answer: (c) => (c.event.after ? `${c.event.after.src}:${c.event.after.sport}` : null),
    },
  },
];

export const CONNTRACK_REPLY_LESSON: Lesson = {
  id: "conntrack",
  title: "11. conntrack reverses the reply",
  claim: "conntrack stores the translation, so the return traffic is turned back and reaches the originating pod.",
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
      find: (e) => snat(e) && e.host === "node-a" && e.packet.src === "10.244.1.20" && e.after.src === CLUSTER_IP,
      look: ["conntrack", "packet"],
      node: "node-a",
    },
    {
      title: "Pod A hears the Service",
      example: "seed",
      text: "The SYN-ACK reaches Pod A from the address it sent the SYN to. The handshake completes through the virtual IP.",
      find: (e) => e.kind === "received" && e.host === "pod-a" && isSynAck(e.packet),
      look: ["packet", "tcpdump"],
    },
  ],
  question: {
    ask: "From which address and port does Pod A receive the SYN-ACK (address:port)?",
    form: "address:port",
    answer: (c) => `${c.event.packet.src}:${c.event.packet.sport}`,
  },
};
