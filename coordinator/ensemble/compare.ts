/**
 * AUC and a paired, stratified bootstrap of the difference between two scorings of the same customers,
 * used to tell a real difference from noise when choosing what to publish. Deterministic: a fixed seed.
 *
 * (coordinator/evaluate has no DeLong helper yet; once it has, this comparison can use it instead.)
 */
import { ModelError } from '../../core/errors.js';
import { mulberry32 } from '../../core/random.js';

export interface PairedComparisonOptions {
  /** Bootstrap resamples. @default 400 */
  resamples?: number;
  /** Seed of the resampling. @default 1 */
  seed?: number;
  /** Coverage of the two-sided percentile interval of the difference. @default 0.9 (so each bound is one-sided 95 %) */
  confidence?: number;
}

export interface PairedAucComparison {
  aucA: number;
  aucB: number;
  /** aucA − aucB on all rows. */
  difference: number;
  /** Percentile interval of aucA − aucB over the resamples. */
  lower: number;
  upper: number;
  confidence: number;
  resamples: number;
  seed: number;
}

/** Row order by score ascending, and the tie group each position starts (for AUC with ties counted one half). */
interface SortedScores {
  order: Uint32Array;
  /** groupEnd[k]: one past the last position of the tie group that contains position k. */
  groupEnd: Uint32Array;
}

function sortScores(scores: ArrayLike<number>): SortedScores {
  const n = scores.length;
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => scores[a]! - scores[b]! || a - b);
  const groupEnd = new Uint32Array(n);
  let start = 0;
  for (let k = 1; k <= n; k++) {
    if (k === n || scores[order[k]!]! !== scores[order[start]!]!) {
      for (let m = start; m < k; m++) groupEnd[m] = k;
      start = k;
    }
  }
  return { order, groupEnd };
}

/** AUC where row i counts `weight[i]` times (its bootstrap multiplicity); null without both classes. */
function weightedAuc(labels: Int8Array, sorted: SortedScores, weight: Float64Array | null): number | null {
  const { order, groupEnd } = sorted;
  let negativesBelow = 0;
  let sum = 0;
  let positives = 0;
  let negatives = 0;
  for (let k = 0; k < order.length; ) {
    const end = groupEnd[k]!;
    let groupPos = 0;
    let groupNeg = 0;
    for (let m = k; m < end; m++) {
      const i = order[m]!;
      const w = weight ? weight[i]! : 1;
      if (labels[i] === 1) groupPos += w;
      else groupNeg += w;
    }
    sum += groupPos * (negativesBelow + groupNeg / 2);
    negativesBelow += groupNeg;
    positives += groupPos;
    negatives += groupNeg;
    k = end;
  }
  return positives > 0 && negatives > 0 ? sum / (positives * negatives) : null;
}

/** The probability that a random buyer outscores a random non-buyer (ties one half); null without both classes. */
export function aucOf(labels: Int8Array, scores: ArrayLike<number>): number | null {
  if (scores.length !== labels.length) throw new ModelError(`${scores.length} scores for ${labels.length} labels`);
  return weightedAuc(labels, sortScores(scores), null);
}

/**
 * Compares two scorings of the same customers: the AUC difference a − b and its bootstrap interval,
 * resampling buyers and non-buyers separately (so each resample keeps both classes) and the same
 * customers for both scorings (paired). Needs at least one buyer and one non-buyer.
 */
export function pairedAucComparison(
  labels: Int8Array,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: PairedComparisonOptions = {},
): PairedAucComparison {
  const resamples = options.resamples ?? 400;
  const seed = options.seed ?? 1;
  const confidence = options.confidence ?? 0.9;
  if (a.length !== labels.length || b.length !== labels.length) {
    throw new ModelError(`paired comparison: ${a.length} and ${b.length} scores for ${labels.length} labels; both must score the same customers`);
  }
  const sortedA = sortScores(a);
  const sortedB = sortScores(b);
  const aucA = weightedAuc(labels, sortedA, null);
  const aucB = weightedAuc(labels, sortedB, null);
  if (aucA === null || aucB === null) {
    throw new ModelError('paired comparison: the customers must include buyers and non-buyers');
  }
  const pos: number[] = [];
  const neg: number[] = [];
  labels.forEach((y, i) => (y === 1 ? pos : neg).push(i));
  const random = mulberry32(seed);
  const weight = new Float64Array(labels.length);
  const differences = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    weight.fill(0);
    for (const group of [pos, neg]) {
      for (let k = 0; k < group.length; k++) weight[group[Math.floor(random() * group.length)]!]! += 1;
    }
    differences[r] = weightedAuc(labels, sortedA, weight)! - weightedAuc(labels, sortedB, weight)!;
  }
  differences.sort();
  const tail = (1 - confidence) / 2;
  const at = (q: number) => differences[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))]!;
  return { aucA, aucB, difference: aucA - aucB, lower: resamples > 0 ? at(tail) : aucA - aucB, upper: resamples > 0 ? at(1 - tail) : aucA - aucB, confidence, resamples, seed };
}
