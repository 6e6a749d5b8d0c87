// Selecting a packet: its hops, the connection it belongs to, the address pairs it was seen
// with (to light conntrack rows) and the rules it matched on each node.
import { dstOf, srcOf } from "./lesson-types";
import { packetKey } from "./packets";
import { renderPacket } from "./packet-view";
import { renderConntrack, renderEvents, renderNodeTabs, renderPolicy, renderRules } from "./panels";
import type { PacketInfo, SimEvent } from "./podnet";
import { app } from "./state";

const tupleOf = (p: PacketInfo): string => `${srcOf(p)}>${dstOf(p)}`;
const reverseOf = (p: PacketInfo): string => `${dstOf(p)}>${srcOf(p)}`;
export const RULE_NOTE = /^(raw|mangle|nat|filter|security) (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING): (-A .*|add rule .*)$/;
const NFT_RULE = /^add rule \S+ \S+ (\S+) (.*)$/;

/**
 * The rule a hook note says matched, as a key of the rules panel's lines: iptables notes
 * carry the iptables-save line itself; nftables notes carry `add rule FAMILY TABLE CHAIN
 * RULE`, which `nft list ruleset` prints as RULE inside `chain CHAIN { ... }`.
 */
export function ruleKey(note: string): string | null {
  const m = RULE_NOTE.exec(note);
  if (!m) return null;
  const rule = m[3]!;
  const nft = NFT_RULE.exec(rule);
  return nft ? `${nft[1]}\u0000${nft[2]}` : rule;
}

export function select(index: number): void {
  if (!app.tl) return;
  app.selEpoch = app.tl.epoch;
  const e = app.tl.event(index);
  if (!e) return;
  // The connection's events around the packet (bounded, so big runs stay quick).
  const from = Math.max(0, index - 4000);
  app.tl.event(index + 4000); // make sure the lookahead covers the neighbourhood
  const around = app.tl.known(from, index + 4000);
  const sameConn = (x: SimEvent): boolean =>
    e.conn !== null && x.conn !== null && x.conn.flow === e.conn.flow && x.conn.id === e.conn.id;
  const connEvents = e.conn ? around.filter(sameConn) : around.filter((x) => packetKey(x.packet) === packetKey(e.packet));
  // The packet's hops: same key, between the send from a pod before it and the next one.
  const key = packetKey(e.packet);
  const sameKey = connEvents.filter((x) => packetKey(x.packet) === key);
  const pos = sameKey.findIndex((x) => x.index === e.index);
  let start = pos;
  while (start > 0 && !(sameKey[start]!.kind === "sent" && app.podHosts.has(sameKey[start]!.host))) start--;
  let end = pos + 1;
  while (end < sameKey.length && !(sameKey[end]!.kind === "sent" && app.podHosts.has(sameKey[end]!.host))) end++;
  const journey = pos >= 0 ? sameKey.slice(start, end) : [e];
  const tuples = new Set<string>();
  for (const x of connEvents) {
    tuples.add(tupleOf(x.packet));
    tuples.add(reverseOf(x.packet));
    if (x.after) {
      tuples.add(tupleOf(x.after));
      tuples.add(reverseOf(x.after));
    }
  }
  const rules = new Map<string, Set<string>>();
  for (const x of journey) {
    for (const n of x.notes) {
      const key = ruleKey(n);
      if (key === null) continue;
      let set = rules.get(x.host);
      if (!set) rules.set(x.host, (set = new Set()));
      set.add(key);
    }
  }
  app.selected = { event: e, conn: e.conn, journey, connEvents, tuples, rules };
  // Show the tables of the node the packet crosses first (with rules, if any).
  const firstRuleNode = [...rules.keys()].find((n) => app.nodeNames.includes(n));
  const firstNode = journey.find((x) => app.nodeNames.includes(x.host))?.host;
  const node = app.nodeNames.includes(e.host) ? e.host : (firstRuleNode ?? firstNode);
  if (node) {
    app.ctNode = node;
    app.rulesNode = firstRuleNode ?? node;
    renderNodeTabs();
  }
  document.body.dataset.selected = String(index);
  app.needsDraw = true;
  renderPacket();
  renderConntrack();
  renderRules();
  renderPolicy();
  renderEvents();
}
