// What a guided lesson is: steps that each name the bundled example they run, the packet to
// select (the first trace event matching `find`; the timeline moves to its time) and the
// panels to look at; and a closing question whose answer is computed from the run, never
// written down.
import type { PacketInfo, Report, SimEvent, Topology } from "./podnet";

export type Panel = "packet" | "conntrack" | "rules" | "policy" | "tcpdump" | "events" | "report" | "topology";

/** What `find` may look at besides the event: the scenario as loaded. */
export interface FindContext {
  /** The topology at time 0 (pods created later by a fault are not in it). */
  topology: Topology;
}

/** What an answer is computed from: the step's packet and the engine's state at its time. */
export interface AnswerContext extends FindContext {
  /** The event the last step selected. */
  event: SimEvent;
  /** Every hop of that packet. */
  journey: SimEvent[];
  /** `podnet run --json` at the time shown. */
  report: Report | null;
  /** tcpdump lines of an interface up to the time shown. */
  tcpdump: (iface: string, filter: string) => string[];
}

export interface Question {
  /** Asked under the last step. */
  ask: string;
  /** The expected answer, from the run (null: the run does not have it, said on the page). */
  answer: (c: AnswerContext) => string | null;
  /** What the learner should type, e.g. "an IP address" (the input's placeholder). */
  form: string;
}

export interface LessonStep {
  title: string;
  /** HTML-free text; blank lines separate paragraphs. */
  text: string;
  /** Name of a bundled example (examples()[].name), or a matcher over the names. */
  example: string | RegExp;
  /** The event to select; the timeline jumps to its time. */
  find: (e: SimEvent, c: FindContext) => boolean;
  /** The panels to look at: the first is brought into view, the others unfolded. */
  look: Panel[];
  /** Node whose conntrack table and rules to show (default: where the selected event is). */
  node?: string;
  /** A capture to show: on the selected event's own interface ("event") or a named one. */
  tcpdump?: { iface: string; filter: string };
}

export interface Lesson {
  id: string;
  title: string;
  /** The claim of the story the lesson shows, in one sentence. */
  claim: string;
  steps: LessonStep[];
  question: Question;
  /** Shown instead of the steps when no bundled example matches. */
  unavailable?: string;
}

const addr = (ip: string, port: number | null): string => (port === null ? ip : `${ip}:${port}`);
export const srcOf = (p: PacketInfo): string => addr(p.src, p.sport);
export const dstOf = (p: PacketInfo): string => addr(p.dst, p.dport);

export const isSyn = (p: PacketInfo): boolean => p.proto === "tcp" && p.flags === "S";
export const isSynAck = (p: PacketInfo): boolean => p.proto === "tcp" && p.flags === "S.";
export const rewritten = (e: SimEvent): e is SimEvent & { after: PacketInfo } => e.kind === "hook" && e.after !== null;
/** A rewrite of the source address (SNAT, masquerade, reverse DNAT). */
export const snat = (e: SimEvent): e is SimEvent & { after: PacketInfo } => rewritten(e) && e.packet.src !== e.after.src;

/** How an answer is compared: case, spaces and a trailing dot do not matter. */
export function normalizeAnswer(s: string): string {
  return s.trim().toLowerCase().replace(/\s+/g, "").replace(/\.$/, "");
}
