/**
 * The tables behind the report's per-product figures, from labels and one set of scores: deciles of the
 * published score (as the prediction table cuts them), a histogram of the scores on their own range, and
 * reliability bins of equal customer counts (equal-width bins over [0, 1] put every score of a 0.5 % base
 * rate in the first bin).
 */
import { axisMax } from './charts.js';
import { tieGroups } from './order.js';

export interface DecileRow {
  /** 1 = the highest scores. */
  decile: number;
  customers: number;
  buyers: number;
  /** buyers / customers; null for an empty decile (fewer than 10 customers). */
  rate: number | null;
  /** rate / the base rate; null without buyers overall or for an empty decile. */
  lift: number | null;
  /** The decile's score range; null when empty. */
  minScore: number | null;
  maxScore: number | null;
}

/**
 * Customers ranked by score descending, ties broken by `tieBreak` ascending (the customer ids: the
 * prediction table's rank) or else by row; decile = ⌊(rank − 1) · 10 / n⌋ + 1, as the table's `decile`.
 */
export function decileTable(labels: Int8Array, scores: Float32Array, tieBreak?: readonly string[]): DecileRow[] {
  const n = labels.length;
  const { order, start, groups } = tieGroups(scores);
  for (let g = 0; g < groups; g++) {
    if (start[g + 1]! - start[g]! < 2) continue;
    order.set(order.slice(start[g]!, start[g + 1]!).sort((a, b) => (tieBreak ? compareText(tieBreak[a]!, tieBreak[b]!) : a - b)), start[g]!);
  }
  let positives = 0;
  for (const y of labels) positives += y === 1 ? 1 : 0;
  const baseRate = n > 0 ? positives / n : 0;
  const rows: DecileRow[] = Array.from({ length: 10 }, (_, k) => ({ decile: k + 1, customers: 0, buyers: 0, rate: null, lift: null, minScore: null, maxScore: null }));
  order.forEach((i, r) => {
    const row = rows[Math.floor((r * 10) / n)]!;
    const s = scores[i]!;
    row.customers++;
    if (labels[i] === 1) row.buyers++;
    row.maxScore ??= s;
    row.minScore = s;
  });
  for (const row of rows) {
    if (row.customers === 0) continue;
    row.rate = row.buyers / row.customers;
    row.lift = baseRate > 0 ? row.rate / baseRate : null;
  }
  return rows;
}

export interface HistogramBin {
  /** Scores in [lower, upper); the last bin includes its upper edge. */
  lower: number;
  upper: number;
  customers: number;
  buyers: number;
}

/** Equal-width bins from 0 to a little above the highest score (axisMax, never above 1). @default 20 bins */
export function scoreHistogram(labels: Int8Array, scores: Float32Array, bins = 20): HistogramBin[] {
  let top = 0;
  for (const s of scores) if (s > top) top = s;
  const upper = axisMax(top, { headroom: 1.02, cap: 1 });
  const out: HistogramBin[] = Array.from({ length: bins }, (_, k) => ({
    lower: Number(((upper * k) / bins).toPrecision(12)),
    upper: Number(((upper * (k + 1)) / bins).toPrecision(12)),
    customers: 0,
    buyers: 0,
  }));
  for (let i = 0; i < scores.length; i++) {
    const bin = out[Math.min(bins - 1, Math.max(0, Math.floor((scores[i]! / upper) * bins)))]!;
    bin.customers++;
    if (labels[i] === 1) bin.buyers++;
  }
  return out;
}

export interface ReliabilityBin {
  count: number;
  /** Weighted mean score of the bin's customers. */
  meanPredicted: number;
  /** Weighted share of buyers among them. */
  observedRate: number;
}

/**
 * Customers sorted by score, cut into `bins` groups of about equal count; customers with the same score
 * stay in one group (so there may be fewer groups). @default 10 bins
 */
export function reliabilityBins(labels: Int8Array, scores: Float32Array, weights?: Float32Array | Float64Array, bins = 10): ReliabilityBin[] {
  const n = labels.length;
  const { order, start, groups } = tieGroups(scores);
  const out: ReliabilityBin[] = [];
  let current = -1;
  let count = 0;
  let weight = 0;
  let scoreSum = 0;
  let positiveWeight = 0;
  const close = () => {
    if (count > 0 && weight > 0) out.push({ count, meanPredicted: scoreSum / weight, observedRate: positiveWeight / weight });
    count = weight = scoreSum = positiveWeight = 0;
  };
  // Lowest scores first: tie groups from the last; a group starts a new bin when its first row's rank does.
  let rank = 0;
  for (let g = groups - 1; g >= 0; g--) {
    const bin = Math.floor((rank * bins) / n);
    if (bin !== current) {
      close();
      current = bin;
    }
    for (let k = start[g]!; k < start[g + 1]!; k++) {
      const i = order[k]!;
      const w = weights ? weights[i]! : 1;
      count++;
      weight += w;
      scoreSum += w * scores[i]!;
      if (labels[i] === 1) positiveWeight += w;
    }
    rank += start[g + 1]! - start[g]!;
  }
  close();
  return out;
}

/** Byte order of UTF-16 code units, as DuckDB orders VARCHAR for the ids this project writes. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
