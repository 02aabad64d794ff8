/**
 * The benchmark's own reference baseline on known-truth data: a logistic regression on per-category event
 * counts, computed straight from the generator's lookback summaries (not from the pipeline), so that the
 * measuring stick does not depend on the code it measures.
 *
 * Features per product k (as of each snapshot, over the lookback): ln(1 + n) of pv, cart, fav, buy in k over
 * 28 and over 7 days; ln(1 + days since the last event in k) and a has-event-in-k flag; ln(1 + n) of pv, cart,
 * fav, buy in all categories; ln(1 + days since the last event). Standardised, L2 = 1, fitted on the training
 * snapshot (as of D − H, its labels [D − H, D)) and scored as of D: what "ten lines of SQL" reach.
 */
import { fitLogisticRegression, predictLogistic } from '../coordinator/evaluate/index.js';
import { O_LAST, OVERALL, S_LAST, STATS, type Snapshot } from './known-truth.js';

const DAY_S = 86_400;

function features(s: Snapshot, k: number, targets: number, lookbackDays: number): Float64Array[] {
  const width = targets * STATS + OVERALL;
  const n = s.customerIds.length;
  const cols: Float64Array[] = [];
  const col = (f: (row: Float32Array) => number) => {
    const out = new Float64Array(n);
    for (let r = 0; r < n; r++) out[r] = f(s.stats.subarray(r * width, (r + 1) * width));
    cols.push(out);
  };
  const days = (t: number) => (Number.isNaN(t) ? lookbackDays + 1 : (s.asOfSec - t) / DAY_S);
  for (let j = 0; j < 8; j++) col((row) => Math.log1p(row[k * STATS + j]!));
  col((row) => Math.log1p(days(row[k * STATS + S_LAST]!)));
  col((row) => (Number.isNaN(row[k * STATS + S_LAST]!) ? 0 : 1));
  for (let j = 0; j < 4; j++) col((row) => Math.log1p(row[targets * STATS + j]!));
  col((row) => Math.log1p(days(row[targets * STATS + O_LAST]!)));
  return cols;
}

/** Scores as of the score snapshot, in its customer order, for target k. */
export function countBaselineScores(train: Snapshot, score: Snapshot, k: number, targets: number, lookbackDays: number): Float32Array {
  const labels = Int8Array.from({ length: train.customerIds.length }, (_, r) => train.labels[r * targets + k]!);
  const model = fitLogisticRegression(features(train, k, targets, lookbackDays), labels, { l2: 1, standardise: true });
  return predictLogistic(model, features(score, k, targets, lookbackDays));
}
