/**
 * DeLong's confidence intervals for the AUC, and for the difference of two AUCs on the same customers
 * (DeLong, DeLong & Clarke-Pearson 1988, computed in O(N log N) from tie groups as in Sun & Xu 2014).
 *
 * Each positive i gets V10_i = P(score_i > score of a random negative) (ties ½), each negative j gets
 * V01_j = P(a random positive's score > score_j); AUC is the mean of either. The AUC's variance is
 * S10 / m + S01 / n with S10, S01 the sample (co)variances of those components over the m positives and
 * n negatives. Intervals are normal, ±1.96 standard errors, and an AUC's interval is clipped to [0, 1].
 * With a single positive (or negative) that class's variance is undefined: no interval then (null).
 */
import { InputError } from '../../core/errors.js';
import { tieGroups } from './order.js';

/** The two-sided 97.5 % normal quantile. */
export const Z_95 = 1.959963984540054;

export interface AucInterval {
  auc: number;
  /** Standard error (DeLong). */
  se: number;
  lower: number;
  upper: number;
}

export interface AucDifference {
  /** AUC(a) − AUC(b). */
  difference: number;
  se: number;
  lower: number;
  upper: number;
  /** Two-sided p-value of "the AUCs are equal". */
  pValue: number;
}

/** The structural components, row-aligned (V10 on positive rows, V01 on negative rows). */
interface Components {
  v: Float64Array;
  positives: number;
  negatives: number;
  auc: number;
}

function components(labels: Int8Array, scores: Float32Array | Float64Array): Components | null {
  // Float32, as in computeMetrics, so that both see the same ties and the same AUC.
  const s = scores instanceof Float32Array ? scores : Float32Array.from(scores);
  if (s.length !== labels.length) throw new InputError(`got ${s.length} scores for ${labels.length} labels: give one score per labelled row`);
  let positives = 0;
  for (const y of labels) if (y === 1) positives++;
  const negatives = labels.length - positives;
  if (positives < 2 || negatives < 2) return null;
  const { order, start, groups } = tieGroups(s);
  const v = new Float64Array(labels.length);
  let positivesAbove = 0;
  let negativesAbove = 0;
  let sum = 0;
  for (let g = 0; g < groups; g++) {
    let gp = 0;
    for (let k = start[g]!; k < start[g + 1]!; k++) if (labels[order[k]!] === 1) gp++;
    const gn = start[g + 1]! - start[g]! - gp;
    const negativesBelow = negatives - negativesAbove - gn;
    const v10 = (negativesBelow + 0.5 * gn) / negatives;
    const v01 = (positivesAbove + 0.5 * gp) / positives;
    for (let k = start[g]!; k < start[g + 1]!; k++) {
      const i = order[k]!;
      v[i] = labels[i] === 1 ? v10 : v01;
    }
    sum += gp * v10;
    positivesAbove += gp;
    negativesAbove += gn;
  }
  return { v, positives, negatives, auc: sum / positives };
}

/** Sample covariance of a's and b's components over the rows with label `y`. */
function covariance(labels: Int8Array, a: Components, b: Components, y: 0 | 1): number {
  const count = y === 1 ? a.positives : a.negatives;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== y) continue;
    ma += a.v[i]!;
    mb += b.v[i]!;
  }
  ma /= count;
  mb /= count;
  let sum = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === y) sum += (a.v[i]! - ma) * (b.v[i]! - mb);
  return sum / (count - 1);
}

function variance(labels: Int8Array, a: Components, b: Components): number {
  return covariance(labels, a, b, 1) / a.positives + covariance(labels, a, b, 0) / a.negatives;
}

/** The AUC with its 95 % DeLong interval; null without two rows of each class. */
export function aucInterval(labels: Int8Array, scores: Float32Array | Float64Array): AucInterval | null {
  const c = components(labels, scores);
  if (!c) return null;
  const se = Math.sqrt(Math.max(variance(labels, c, c), 0));
  return { auc: c.auc, se, lower: Math.max(0, c.auc - Z_95 * se), upper: Math.min(1, c.auc + Z_95 * se) };
}

/** AUC(a) − AUC(b) on the same rows, with its paired 95 % DeLong interval; null without two rows of each class. */
export function aucDifference(labels: Int8Array, a: Float32Array | Float64Array, b: Float32Array | Float64Array): AucDifference | null {
  const ca = components(labels, a);
  const cb = components(labels, b);
  if (!ca || !cb) return null;
  const v = variance(labels, ca, ca) + variance(labels, cb, cb) - 2 * variance(labels, ca, cb);
  const se = Math.sqrt(Math.max(v, 0));
  const difference = ca.auc - cb.auc;
  const pValue = se > 0 ? 2 * normalUpperTail(Math.abs(difference) / se) : difference === 0 ? 1 : 0;
  return { difference, se, lower: difference - Z_95 * se, upper: difference + Z_95 * se, pValue };
}

/** P(Z > z) for a standard normal, via erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
function normalUpperTail(z: number): number {
  const x = z / Math.SQRT2;
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const erfc =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return 0.5 * (x >= 0 ? erfc : 2 - erfc);
}
