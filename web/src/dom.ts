// Small DOM helpers shared by the views: element lookup and creation, time formatting, the
// status line.

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el as T;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; testid?: string; title?: string; text?: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.testid) el.dataset.testid = props.testid;
  if (props.title) el.title = props.title;
  if (props.text !== undefined) el.textContent = props.text;
  el.append(...children);
  return el;
}

/** Virtual µs as tcpdump prints them: seconds with 6 decimals. */
export function fmtTime(us: number): string {
  const s = Math.floor(us / 1e6);
  const frac = String(Math.round(us - s * 1e6)).padStart(6, "0");
  return `${s}.${frac} s`;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function setStatus(text: string, kind: "ok" | "error" | "busy" = "ok"): void {
  const s = $("status");
  s.textContent = text;
  s.className = `status ${kind}`;
}
