/**
 * Calibration of published scores (Platt scaling): p' = σ(slope · logit(p) + intercept), fitted on the
 * validation customers, so that a threshold of 0.3 means a 30 % purchase probability even when training
 * (class weights, negative sampling) inflated the raw scores.
 */
import { fitLogisticRegression } from '../evaluate/index.js';
import { logit } from './spec.js';

export type Calibration =
  | {
      method: 'platt';
      slope: number;
      intercept: number;
      /** Rows and buyers it was fitted on; `negativeWeight` > 1 when sampled-out non-buyers were weighted back. */
      fittedOn: { rows: number; positives: number; negativeWeight: number };
    }
  | { method: 'none'; reason: string };

export interface FitCalibrationOptions {
  /**
   * Weight of each non-buyer in the fit: 1 / sampling.negativeRate when the validation customers'
   * non-buyers were sampled, so that calibrated scores match the unsampled base rate. @default 1
   */
  negativeWeight?: number;
  /** L2 penalty on the slope (not the intercept), on the scale of the summed log loss. @default 1 */
  l2?: number;
}

export function fitPlattCalibration(labels: Int8Array, scores: ArrayLike<number>, options: FitCalibrationOptions = {}): Calibration {
  const negativeWeight = options.negativeWeight ?? 1;
  let positives = 0;
  for (const y of labels) if (y === 1) positives++;
  if (positives === 0 || positives === labels.length) {
    return { method: 'none', reason: `the validation customers include ${positives} buyers among ${labels.length}: nothing to calibrate on` };
  }
  const x = Float64Array.from({ length: labels.length }, (_, i) => logit(scores[i]!));
  const sampleWeights = negativeWeight === 1 ? undefined : Float64Array.from(labels, (y) => (y === 1 ? 1 : negativeWeight));
  const fit = fitLogisticRegression([x], labels, { l2: options.l2 ?? 1, ...(sampleWeights ? { sampleWeights } : {}) });
  if (!fit.converged) return { method: 'none', reason: `the calibration fit did not converge in ${fit.iterations} iterations` };
  // A slope ≤ 0 would reverse or flatten the ranking: the scores carry no usable signal on validation.
  if (!(fit.weights[0]! > 0)) return { method: 'none', reason: `the scores do not rank validation buyers above non-buyers (Platt slope ${fit.weights[0]})` };
  return { method: 'platt', slope: fit.weights[0]!, intercept: fit.bias, fittedOn: { rows: labels.length, positives, negativeWeight } };
}

export function applyCalibration(c: Calibration, scores: ArrayLike<number>): Float32Array {
  if (c.method === 'none') return Float32Array.from(scores);
  return Float32Array.from(scores, (p) => 1 / (1 + Math.exp(-(c.slope * logit(p) + c.intercept))));
}
