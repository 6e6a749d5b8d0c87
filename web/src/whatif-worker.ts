// What if runs in this worker, on its own instance of the wasm module: both worlds run to
// their end (seconds for the longer examples), and the page stays responsive meanwhile.
import { init, whatIf } from "./podnet";
import type { Diff } from "./podnet";

export interface WhatIfRequest {
  id: number;
  before: string;
  after: string;
}
export type WhatIfReply = { id: number; diff: Diff } | { id: number; error: string };

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<WhatIfRequest>) => void) | null;
  postMessage(reply: WhatIfReply): void;
};
const ready = init();

scope.onmessage = (e) => {
  const { id, before, after } = e.data;
  ready
    .then(() => scope.postMessage({ id, diff: whatIf(before, after) }))
    .catch((err: unknown) => scope.postMessage({ id, error: err instanceof Error ? err.message : String(err) }));
};
