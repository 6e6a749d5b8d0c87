// A textarea with line numbers; load errors from check(yaml) are shown inline under their
// line and listed below the editor.
import type { Diagnostic } from "./podnet";

export class YamlEditor {
  private lineHeight = 18;
  private diagnostics: Diagnostic[] = [];

  constructor(
    readonly textarea: HTMLTextAreaElement,
    private readonly gutter: HTMLElement,
    private readonly inline: HTMLElement,
    private readonly list: HTMLElement,
  ) {
    textarea.addEventListener("input", () => this.renderGutter());
    textarea.addEventListener("scroll", () => this.syncScroll());
    const lh = parseFloat(getComputedStyle(textarea).lineHeight);
    if (Number.isFinite(lh) && lh > 0) this.lineHeight = lh;
  }

  get value(): string {
    return this.textarea.value;
  }

  set value(text: string) {
    this.textarea.value = text;
    this.textarea.scrollTop = 0;
    this.renderGutter();
  }

  /** Show these diagnostics (from check()) at their lines. */
  show(diags: Diagnostic[]): void {
    this.diagnostics = diags;
    this.list.replaceChildren(
      ...diags.map((d) => {
        const li = document.createElement("li");
        li.className = d.severity;
        li.dataset.testid = d.severity === "error" ? "yaml-error" : "yaml-warning";
        if (d.line !== null) li.dataset.line = String(d.line);
        li.textContent = d.text;
        if (d.line !== null) li.addEventListener("click", () => this.goto(d.line ?? 1, d.column ?? 1));
        return li;
      }),
    );
    this.renderGutter();
  }

  goto(line: number, column: number): void {
    const lines = this.textarea.value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += (lines[i]?.length ?? 0) + 1;
    offset += Math.max(0, column - 1);
    this.textarea.focus();
    this.textarea.setSelectionRange(offset, offset);
    this.textarea.scrollTop = Math.max(0, (line - 4) * this.lineHeight);
    this.syncScroll();
  }

  private renderGutter(): void {
    const n = this.textarea.value.split("\n").length;
    const bad = new Map<number, Diagnostic>();
    for (const d of this.diagnostics) if (d.line !== null && !bad.has(d.line)) bad.set(d.line, d);
    const frag = document.createDocumentFragment();
    for (let i = 1; i <= n; i++) {
      const div = document.createElement("div");
      div.textContent = String(i);
      const d = bad.get(i);
      if (d) {
        div.className = d.severity;
        div.title = d.message;
      }
      frag.append(div);
    }
    // A trailing spacer keeps the gutter scrollable as far as the textarea.
    const pad = document.createElement("div");
    pad.style.height = "40px";
    frag.append(pad);
    this.gutter.replaceChildren(frag);
    // The inline messages sit right under their line.
    this.inline.replaceChildren(
      ...[...bad.entries()].map(([line, d]) => {
        const div = document.createElement("div");
        div.className = `inline-${d.severity}`;
        div.dataset.testid = d.severity === "error" ? "yaml-error-inline" : "yaml-warning-inline";
        div.dataset.line = String(line);
        div.dataset.top = String(line * this.lineHeight);
        div.textContent = `${d.column !== null ? `${line}:${d.column} ` : ""}${d.message}`;
        return div;
      }),
    );
    this.syncScroll();
  }

  private syncScroll(): void {
    const top = this.textarea.scrollTop;
    this.gutter.scrollTop = top;
    const pad = parseFloat(getComputedStyle(this.textarea).paddingTop) || 0;
    for (const el of this.inline.children) {
      const div = el as HTMLElement;
      const y = Number(div.dataset.top ?? 0) + pad - top;
      div.style.transform = `translateY(${y}px)`;
      div.style.visibility = y < 0 || y > this.textarea.clientHeight - 4 ? "hidden" : "visible";
    }
  }
}
