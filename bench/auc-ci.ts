/**
 * AUC confidence intervals by DeLong's method (DeLong, DeLong & Clarke-Pearson 1988), for one score and for
 * the paired difference of two scores on the same customers. coordinator/evaluate/metrics.ts computes the AUC
 * itself but no interval; this is the benchmark's. O(n log n) through mid-ranks; ties count one half.
 */

export interface AucInterval {
  auc: number;
  lower: number;
  upper: number;
  se: number;
}

const Z95 = 1.959963984540054;

/** Mid-ranks (1-based, ties averaged) of `x`. */
function midRanks(x: Float64Array): Float64Array {
  const n = x.length;
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const ranks = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && x[order[j + 1]!] === x[order[i]!]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]!] = r;
    i = j + 1;
  }
  return ranks;
}

/** Per score: the AUC and its structural components V10 (per positive) and V01 (per negative). */
function components(labels: Int8Array, scores: ArrayLike<number>) {
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < labels.length; i++) (labels[i] === 1 ? pos : neg).push(scores[i]!);
  const m = pos.length;
  const n = neg.length;
  if (m === 0 || n === 0) return null;
  const all = Float64Array.from([...pos, ...neg]);
  const rAll = midRanks(all);
  const rPos = midRanks(Float64Array.from(pos));
  const rNeg = midRanks(Float64Array.from(neg));
  const v10 = new Float64Array(m);
  const v01 = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < m; i++) {
    v10[i] = (rAll[i]! - rPos[i]!) / n;
    sum += rAll[i]!;
  }
  for (let j = 0; j < n; j++) v01[j] = 1 - (rAll[m + j]! - rNeg[j]!) / m;
  const auc = (sum - (m * (m + 1)) / 2) / (m * n);
  return { auc, v10, v01, m, n };
}

function covariance(a: Float64Array, b: Float64Array, meanA: number, meanB: number): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - meanA) * (b[i]! - meanB);
  return a.length > 1 ? s / (a.length - 1) : 0;
}

function interval(value: number, variance: number, clamp: [number, number]): AucInterval {
  const se = Math.sqrt(Math.max(variance, 0));
  return { auc: value, se, lower: Math.max(clamp[0], value - Z95 * se), upper: Math.min(clamp[1], value + Z95 * se) };
}

/** The AUC of `scores` with its 95 % DeLong interval; null without both classes. */
export function aucWithCi(labels: Int8Array, scores: ArrayLike<number>): AucInterval | null {
  const c = components(labels, scores);
  if (!c) return null;
  const variance = covariance(c.v10, c.v10, c.auc, c.auc) / c.m + covariance(c.v01, c.v01, c.auc, c.auc) / c.n;
  return interval(c.auc, variance, [0, 1]);
}

/** AUC(a) − AUC(b) on the same customers with its paired 95 % DeLong interval; null without both classes. */
export function pairedAucDifference(labels: Int8Array, a: ArrayLike<number>, b: ArrayLike<number>): AucInterval | null {
  const ca = components(labels, a);
  const cb = components(labels, b);
  if (!ca || !cb) return null;
  const var10 = covariance(ca.v10, ca.v10, ca.auc, ca.auc) + covariance(cb.v10, cb.v10, cb.auc, cb.auc) - 2 * covariance(ca.v10, cb.v10, ca.auc, cb.auc);
  const var01 = covariance(ca.v01, ca.v01, ca.auc, ca.auc) + covariance(cb.v01, cb.v01, cb.auc, cb.auc) - 2 * covariance(ca.v01, cb.v01, ca.auc, cb.auc);
  return interval(ca.auc - cb.auc, var10 / ca.m + var01 / ca.n, [-1, 1]);
}
