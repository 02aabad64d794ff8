export type EnsembleMethod = 'mean' | 'fitted';

/**
 * How a product's model scores combine; recorded in the evaluation report and in each prediction
 * partition's manifest, so every published score can be traced to its models and weights.
 *
 * - mean:   score = Σ weightᵢ · pᵢ (weights 1/k: the plain average of the models' probabilities)
 * - fitted: score = σ(bias + Σ weightᵢ · logit(pᵢ)), a logistic regression on the models' logits
 *           fitted on the validation window (stacking)
 */
export interface EnsembleSpec {
  method: EnsembleMethod;
  /** What the job asked for; differs from `method` only when a fit fell back to the mean. */
  requested: EnsembleMethod;
  models: string[];
  weights: number[];
  /** Only for 'fitted'. */
  bias?: number;
  fittedOn: { rows: number; positives: number };
  /** Why a requested fit fell back to the mean. */
  fallbackReason?: string;
}

export interface ModelScores {
  name: string;
  scores: Float32Array;
}

/** Scores are clipped to [ε, 1 − ε] before the logit so that a model's 0 or 1 stays finite. */
export const LOGIT_EPSILON = 1e-6;

export function logit(p: number): number {
  const q = Math.min(Math.max(p, LOGIT_EPSILON), 1 - LOGIT_EPSILON);
  return Math.log(q / (1 - q));
}
