/**
 * Each product's verdict: do the published scores beat the best baseline on the same customers, beyond
 * noise? The paired DeLong interval of AUC(published) − AUC(best baseline) decides: above 0 beats, below
 * 0 loses, containing 0 level.
 */
import { aucDifference, type AucDifference } from './delong.js';

export type VerdictOutcome = 'beats' | 'loses' | 'level' | 'undetermined';

export interface Verdict {
  outcome: VerdictOutcome;
  /** E.g. "ensemble loses to the best baseline logistic-counts by 0.045 (95 % CI of the difference −0.070..−0.020)". */
  text: string;
}

export interface Comparison extends AucDifference {
  /** The published entry's name (e.g. 'ensemble'). */
  published: string;
  /** The baseline with the highest AUC. */
  baseline: string;
}

const signed = (x: number) => `${x < 0 ? '−' : x > 0 ? '+' : ''}${Math.abs(x).toFixed(3)}`;

/** The paired comparison of `published` with `baseline`, or null where an AUC is undefined (one class only). */
export function compare(labels: Int8Array, published: { name: string; scores: Float32Array }, baseline: { name: string; scores: Float32Array }): Comparison | null {
  const d = aucDifference(labels, published.scores, baseline.scores);
  return d && { published: published.name, baseline: baseline.name, ...d };
}

export function verdictOf(c: Comparison | null, why: string): Verdict {
  if (!c) return { outcome: 'undetermined', text: `none: ${why}` };
  const ci = `95 % CI of the difference ${signed(c.lower)}..${signed(c.upper)}`;
  if (c.lower > 0) return { outcome: 'beats', text: `${c.published} beats the best baseline ${c.baseline} by ${c.difference.toFixed(3)} (${ci})` };
  if (c.upper < 0) return { outcome: 'loses', text: `${c.published} loses to the best baseline ${c.baseline} by ${(-c.difference).toFixed(3)} (${ci})` };
  return { outcome: 'level', text: `${c.published} is level with the best baseline ${c.baseline}: difference ${signed(c.difference)} (${ci}, contains 0)` };
}
