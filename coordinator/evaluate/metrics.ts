/**
 * Binary-classification metrics for one set of scores, exact under ties and optional sample weights.
 *
 * Tie handling, everywhere: customers with the same score are indistinguishable, so a cut that falls
 * inside a tie group takes the same share of each of its members. Lift@k % is therefore the expected
 * lift over every order of the tied rows, and never depends on the order rows arrived in.
 */
import { InputError, ModelError } from '../../core/errors.js';
import { tieGroups } from './order.js';

export interface CalibrationBin {
  /** The bin covers predicted scores in [lower, upper) (the last bin includes 1). */
  lower: number;
  upper: number;
  /** Rows in the bin. */
  count: number;
  /** Their total sample weight (equal to count without weights). */
  weight: number;
  /** Weighted mean score of the bin; null when it is empty. */
  meanPredicted: number | null;
  /** Weighted share of positives in the bin; null when it is empty. */
  observedRate: number | null;
}

export interface RocPoint {
  fpr: number;
  tpr: number;
}

export interface GainsPoint {
  /** Share of customers targeted, highest scores first. */
  fraction: number;
  /** Share of all positives among them (cumulative gain). */
  gain: number;
  /** gain / fraction: how many times the base rate the targeted group buys; null at fraction 0. */
  lift: number | null;
}

export interface Metrics {
  n: number;
  positives: number;
  /** Total sample weight (n without weights). */
  weight: number;
  positiveWeight: number;
  baseRate: number;
  /** Probability that a random positive outscores a random negative, ties counting one half (the average-rank AUC); null without both classes. */
  auc: number | null;
  brier: number;
  /** Scores clipped to [ε, 1 − ε] first (ε = `logLossEpsilon`). */
  logLoss: number;
  /** Precision in the top 5 % by score divided by the base rate; null without positives. */
  lift5: number | null;
  lift20: number | null;
  /** The best F1 over thresholds "score ≥ t" at every distinct score; null without positives. */
  f1: number | null;
  f1Threshold: number | null;
  /** 10 equal-width bins over [0, 1]. */
  calibration: CalibrationBin[];
  /** From (0, 0) to (1, 1); empty without both classes. */
  roc: RocPoint[];
  /** At fractions 0, 1/curvePoints, …, 1; empty without positives. */
  gains: GainsPoint[];
}

export interface MetricsOptions {
  /** Resolution of the ROC and gains curves kept for charts (the scalar metrics are always exact). @default 100 */
  curvePoints?: number;
  /** Log loss clips scores to [ε, 1 − ε]. @default 1e-7 */
  logLossEpsilon?: number;
}

const CALIBRATION_BINS = 10;

export function computeMetrics(
  labels: Int8Array,
  scores: Float32Array | Float64Array,
  sampleWeights?: Float32Array | Float64Array,
  options: MetricsOptions = {},
): Metrics {
  const curvePoints = options.curvePoints ?? 100;
  const epsilon = options.logLossEpsilon ?? 1e-7;
  const n = labels.length;
  // Model scores are float32; rounding other inputs the same way keeps ties and order identical everywhere.
  const s = scores instanceof Float32Array ? scores : Float32Array.from(scores);
  checkInputs(labels, s, sampleWeights);
  const w = (i: number): number => (sampleWeights ? sampleWeights[i]! : 1);

  let positives = 0;
  let weight = 0;
  let positiveWeight = 0;
  let brierSum = 0;
  let logLossSum = 0;
  const bins = Array.from({ length: CALIBRATION_BINS }, () => ({ count: 0, weight: 0, scoreSum: 0, positiveWeight: 0 }));
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    const p = s[i]!;
    const wi = w(i);
    weight += wi;
    if (y === 1) {
      positives++;
      positiveWeight += wi;
    }
    brierSum += wi * (p - y) * (p - y);
    const clipped = Math.min(Math.max(p, epsilon), 1 - epsilon);
    logLossSum -= wi * (y === 1 ? Math.log(clipped) : Math.log(1 - clipped));
    const bin = bins[Math.min(CALIBRATION_BINS - 1, Math.floor(p * CALIBRATION_BINS))]!;
    bin.count++;
    bin.weight += wi;
    bin.scoreSum += wi * p;
    if (y === 1) bin.positiveWeight += wi;
  }
  if (!(weight > 0)) throw new InputError('sample weights sum to 0: there is nothing to evaluate');
  const negativeWeight = weight - positiveWeight;

  // Walk tie groups from the highest score down, keeping cumulative weights at each group's end.
  const { order, start, groups } = tieGroups(s);
  const cumWeight = new Float64Array(groups + 1);
  const cumPositive = new Float64Array(groups + 1);
  const groupScore = new Float64Array(groups);
  let aucSum = 0;
  let bestF1 = -1;
  let bestThreshold = Number.NaN;
  for (let g = 0; g < groups; g++) {
    let gw = 0;
    let gp = 0;
    for (let k = start[g]!; k < start[g + 1]!; k++) {
      const i = order[k]!;
      gw += w(i);
      if (labels[i] === 1) gp += w(i);
    }
    cumWeight[g + 1] = cumWeight[g]! + gw;
    cumPositive[g + 1] = cumPositive[g]! + gp;
    groupScore[g] = s[order[start[g]!]!]!;
    const gn = gw - gp;
    const negativesBelow = negativeWeight - (cumWeight[g + 1]! - cumPositive[g + 1]!);
    aucSum += gp * (negativesBelow + 0.5 * gn);
    // Predict positive for every score ≥ this group's: F1 = 2·TP / (2·TP + FP + FN) = 2·TP / (P + predicted).
    if (positiveWeight > 0) {
      const f1 = (2 * cumPositive[g + 1]!) / (positiveWeight + cumWeight[g + 1]!);
      if (f1 > bestF1) {
        bestF1 = f1;
        bestThreshold = groupScore[g]!;
      }
    }
  }

  /** Positive weight among the top `mass` of weight, sharing a straddling tie group pro rata. */
  const capturedAt = (mass: number): number => {
    if (mass <= 0) return 0;
    if (mass >= weight) return positiveWeight;
    let lo = 1;
    let hi = groups;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumWeight[mid]! >= mass) hi = mid;
      else lo = mid + 1;
    }
    const before = cumWeight[lo - 1]!;
    const share = (mass - before) / (cumWeight[lo]! - before);
    return cumPositive[lo - 1]! + share * (cumPositive[lo]! - cumPositive[lo - 1]!);
  };
  const liftAt = (fraction: number): number | null =>
    positiveWeight > 0 ? capturedAt(fraction * weight) / positiveWeight / fraction : null;

  const bothClasses = positiveWeight > 0 && negativeWeight > 0;
  const roc: RocPoint[] = [];
  if (bothClasses) {
    const point = (taken: number, captured: number): RocPoint => ({
      fpr: (taken - captured) / negativeWeight,
      tpr: captured / positiveWeight,
    });
    if (groups <= curvePoints) {
      for (let g = 0; g <= groups; g++) roc.push(point(cumWeight[g]!, cumPositive[g]!));
    } else {
      for (let j = 0; j <= curvePoints; j++) {
        const mass = (j / curvePoints) * weight;
        roc.push(point(mass, capturedAt(mass)));
      }
    }
  }
  const gains: GainsPoint[] = [];
  if (positiveWeight > 0) {
    for (let j = 0; j <= curvePoints; j++) {
      const fraction = j / curvePoints;
      const gain = capturedAt(fraction * weight) / positiveWeight;
      gains.push({ fraction, gain, lift: j === 0 ? null : gain / fraction });
    }
  }

  return {
    n,
    positives,
    weight,
    positiveWeight,
    baseRate: positiveWeight / weight,
    auc: bothClasses ? aucSum / (positiveWeight * negativeWeight) : null,
    brier: brierSum / weight,
    logLoss: logLossSum / weight,
    lift5: liftAt(0.05),
    lift20: liftAt(0.2),
    f1: positiveWeight > 0 ? bestF1 : null,
    f1Threshold: positiveWeight > 0 ? bestThreshold : null,
    calibration: bins.map((b, k) => ({
      lower: k / CALIBRATION_BINS,
      upper: (k + 1) / CALIBRATION_BINS,
      count: b.count,
      weight: b.weight,
      meanPredicted: b.weight > 0 ? b.scoreSum / b.weight : null,
      observedRate: b.weight > 0 ? b.positiveWeight / b.weight : null,
    })),
    roc,
    gains,
  };
}

function checkInputs(labels: Int8Array, scores: Float32Array, weights?: Float32Array | Float64Array): void {
  const n = labels.length;
  if (n === 0) throw new InputError('no rows to evaluate: the evaluation window has no customers');
  if (scores.length !== n) {
    throw new ModelError(`got ${scores.length} scores for ${n} labels: scores must be in the same row order as the labels`);
  }
  if (weights && weights.length !== n) {
    throw new InputError(`got ${weights.length} sample weights for ${n} labels: give one weight per row`);
  }
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y !== 0 && y !== 1) throw new InputError(`label ${i} is ${y}: labels must be 0 or 1`);
    const p = scores[i]!;
    if (!(p >= 0 && p <= 1)) throw new ModelError(`score ${i} is ${p}: scores must be probabilities in [0, 1]`);
    if (weights) {
      const wi = weights[i]!;
      if (!(wi >= 0 && Number.isFinite(wi))) throw new InputError(`sample weight ${i} is ${wi}: weights must be finite and ≥ 0`);
    }
  }
}
