/**
 * Simple baselines, computed in the same run as the models so that a model is always judged against
 * what a heuristic or a plain regression on counts would have achieved on the same customers.
 */
import { InputError } from '../../core/errors.js';
import type { CustomerCounts } from './counts.js';
import { fitLogisticRegression, predictLogistic } from './logistic.js';

export interface RecencyFrequencyOptions {
  /** The score halves for every this many days since the last event. @default 7 */
  halfLifeDays?: number;
  /** The purchase event type (the job's `events.purchase`); its events count `purchaseWeight` times. @default none */
  purchase?: string;
  /** @default 10 */
  purchaseWeight?: number;
  /** Weighted events at which the frequency term reaches 1/2. @default the median among customers with history */
  frequencyScale?: number;
}

/**
 * Recency × frequency: 2^(−days / halfLife) · F / (F + scale), F = events weighted (purchases count
 * more), 0 without history. A ranking score in [0, 1), not a calibrated probability: compare it on AUC
 * and lift, not on Brier or log loss.
 */
export function recencyFrequencyScores(counts: CustomerCounts, options: RecencyFrequencyOptions = {}): Float32Array {
  const halfLife = options.halfLifeDays ?? 7;
  const weights = counts.eventTypes.map((t) => (t === options.purchase ? (options.purchaseWeight ?? 10) : 1));
  const frequency = new Float64Array(counts.n);
  const active: number[] = [];
  for (let i = 0; i < counts.n; i++) {
    for (let j = 0; j < weights.length; j++) frequency[i] = frequency[i]! + weights[j]! * counts.counts[j]![i]!;
    if (!Number.isNaN(counts.daysSinceLast[i]!) && frequency[i]! > 0) active.push(frequency[i]!);
  }
  const scale = options.frequencyScale ?? (median(active) || 1);
  const out = new Float32Array(counts.n);
  for (let i = 0; i < counts.n; i++) {
    const days = counts.daysSinceLast[i]!;
    if (Number.isNaN(days)) continue;
    out[i] = 2 ** (-Math.max(days, 0) / halfLife) * (frequency[i]! / (frequency[i]! + scale));
  }
  return out;
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface LogisticBaselineOptions {
  /** L2 penalty on the standardised coefficients. @default 1 */
  l2?: number;
}

/**
 * Logistic regression on per-customer counts: log(1 + n) per event type, log(1 + days since last event)
 * (customers without history get the longest training recency + 1 day) and a has-history flag; features
 * standardised on the training set, L2-penalised, fitted by IRLS (deterministic). Returns evaluation probabilities.
 */
export function logisticRegressionBaseline(
  trainCounts: CustomerCounts,
  trainLabels: Int8Array,
  evalCounts: CustomerCounts,
  options: LogisticBaselineOptions = {},
): Float32Array {
  if (trainLabels.length !== trainCounts.n) {
    throw new InputError(`the baseline got ${trainLabels.length} training labels for ${trainCounts.n} customers with counts`);
  }
  const missing = trainCounts.eventTypes.filter((t) => !evalCounts.eventTypes.includes(t));
  if (missing.length > 0) {
    throw new InputError(
      `the evaluation counts lack event types [${missing.join(', ')}] that the training counts have: write both sets with the same event types`,
    );
  }
  let longest = 0;
  for (const d of trainCounts.daysSinceLast) if (d > longest) longest = d;
  const noHistoryDays = longest + 1;
  const model = fitLogisticRegression(countFeatures(trainCounts, trainCounts.eventTypes, noHistoryDays), trainLabels, {
    l2: options.l2 ?? 1,
    standardise: true,
  });
  return predictLogistic(model, countFeatures(evalCounts, trainCounts.eventTypes, noHistoryDays));
}

function countFeatures(counts: CustomerCounts, eventTypes: readonly string[], noHistoryDays: number): Float64Array[] {
  const features = eventTypes.map((t) => counts.counts[counts.eventTypes.indexOf(t)]!.map(Math.log1p));
  const recency = new Float64Array(counts.n);
  const hasHistory = new Float64Array(counts.n);
  for (let i = 0; i < counts.n; i++) {
    const d = counts.daysSinceLast[i]!;
    hasHistory[i] = Number.isNaN(d) ? 0 : 1;
    recency[i] = Math.log1p(Number.isNaN(d) ? noHistoryDays : Math.max(d, 0));
  }
  return [...features, recency, hasHistory];
}
