// Lesson 14: a node with two CPUs and the conntrack insert race behind the DNS 5-second
// delay: the A and AAAA queries of one socket on two CPUs, the losing insert, and glibc's
// retry after its 5 s timeout.
import type { Lesson } from "./lesson-types";

const LOST = (e: { verdict: string | null; reason: string | null }): boolean => e.verdict === "drop" && (e.reason ?? "").includes("insert clash");

export const RACE_LESSON: Lesson = {
  id: "races",
  title: "14. Two CPUs, one conntrack: the DNS 5-second delay",
  claim: "Two packets of one flow handled on two CPUs at once both create a conntrack entry; the second to confirm loses, and on Linux 4.19 its packet is dropped.",
  steps: [
    {
      title: "Two queries, one socket, two CPUs",
      example: "dns-5s",
      text:
        "glibc's getaddrinfo sends the A and the AAAA query of a name together, from one UDP socket: same source port, so the same conntrack tuple. " +
        "node-a has 2 CPUs; the two queries arrived at the same moment and ran on different CPUs (the packet panel's notes say which). " +
        "This one's lookup ran while the other CPU's entry was not confirmed yet: it cannot see it, and creates its own.",
      find: (e) => e.kind === "hook" && e.hook === "PREROUTING" && e.notes.some((n) => n.includes("this lookup cannot see")),
      look: ["packet", "conntrack"],
      node: "node-a",
    },
    {
      title: "The losing insert",
      example: "dns-5s",
      text:
        "Both entries are confirmed at the end of POSTROUTING. The second finds the first in the table: an insert clash. kube-proxy's statistic rule " +
        "sent the two queries to different CoreDNS pods, so the entries differ, and Linux 4.19 cannot resolve that clash (5.6 and later insert it by its reply tuple): " +
        "the query is dropped and counted in insert_failed, on the CPU that ran it.",
      find: (e) => LOST(e),
      look: ["packet", "conntrack", "events"],
      node: "node-a",
    },
    {
      title: "The retry, 5 seconds later",
      example: "dns-5s",
      text:
        "The client got one answer of two. glibc waits for the other until its timeout (options timeout:5), then switches to single-request mode " +
        "and asks again, one query at a time, from the same socket: both answers come at once. The lookup took 5 s. " +
        "The app-reopen pods (options single-request-reopen) send their second query from a new socket and never wait.",
      find: (e) => e.kind === "sent" && e.host.startsWith("app-") && e.packet.proto === "udp" && e.packet.dport === 53 && e.time >= 5_000_000,
      look: ["packet", "tcpdump"],
      tcpdump: { iface: "event", filter: "udp port 53" },
    },
  ],
  question: {
    ask: "After how many whole seconds of the run did the client send its query again?",
    form: "a number of seconds",
    answer: (c) => String(Math.floor(c.event.time / 1e6)),
  },
};
