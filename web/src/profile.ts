// Lookups in the scout's profiles: ascending (virtual µs, measure) pairs, where the measure
// (wall ms or frames delivered since time 0) never decreases.

/** The first index of `p` where `pred` holds, `pred` false then true along `p` (p.length
 * when it never holds). */
export function firstIndex<T>(p: readonly T[], pred: (e: T) => boolean): number {
  let lo = 0;
  let hi = p.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pred(p[mid] as T)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Column `1 - col` where column `col` is `x`, linear between samples (from (0, 0) before
 * the first; the last sample's value past the last). */
export function lerp(p: readonly [number, number][], x: number, col: 0 | 1): number {
  const other = col === 0 ? 1 : 0;
  const i = firstIndex(p, (e) => e[col] >= x);
  const hi = p[i];
  if (!hi) return p[p.length - 1]?.[other] ?? 0;
  const lo = p[i - 1] ?? [0, 0];
  if (hi[col] <= lo[col]) return hi[other];
  return lo[other] + ((hi[other] - lo[other]) * (x - lo[col])) / (hi[col] - lo[col]);
}
