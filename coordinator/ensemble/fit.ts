import { ModelError } from '../../core/errors.js';
import { fitLogisticRegression, MIN_HELD_OUT_POSITIVES } from '../evaluate/index.js';
import { logit, type EnsembleMethod, type EnsembleSpec, type ModelScores } from './spec.js';

export interface FitEnsembleOptions {
  /** L2 penalty on the fitted weights (not the bias), on the scale of the summed log loss. @default 1 */
  l2?: number;
}

/**
 * Decides how a product's models combine. 'fitted' learns weights on the validation window and falls
 * back to the mean, with the reason recorded, when there is nothing to learn from (one model, or a
 * window without both buyers and non-buyers).
 */
export function fitEnsemble(
  method: EnsembleMethod,
  validation: { labels: Int8Array; models: ModelScores[] },
  options: FitEnsembleOptions = {},
): EnsembleSpec {
  const { labels, models } = validation;
  if (models.length === 0) throw new ModelError('an ensemble needs at least one model; this product has none');
  const names = models.map((m) => m.name);
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate) throw new ModelError(`the model "${duplicate}" appears twice in one ensemble`);
  for (const m of models) {
    if (m.scores.length !== labels.length) {
      throw new ModelError(`model "${m.name}" has ${m.scores.length} validation scores for ${labels.length} labels`);
    }
  }
  let positives = 0;
  for (const y of labels) if (y === 1) positives++;
  const fittedOn = { rows: labels.length, positives };
  const mean = (fallbackReason?: string): EnsembleSpec => ({
    method: 'mean',
    requested: method,
    models: names,
    weights: names.map(() => 1 / names.length),
    fittedOn,
    ...(fallbackReason ? { fallbackReason } : {}),
  });

  if (method === 'mean') return mean();
  if (models.length === 1) return mean('a single model: the ensemble is that model');
  if (positives === 0 || positives === labels.length) {
    return mean(`the validation window has ${positives} buyers among ${labels.length} customers: nothing to fit on`);
  }
  const few = tooFewToFit(positives, labels.length);
  if (few) return mean(few);
  const features = models.map((m) => Float64Array.from(m.scores, logit));
  const fit = fitLogisticRegression(features, labels, { l2: options.l2 ?? 1 });
  if (!fit.converged) return mean(`the weight fit did not converge in ${fit.iterations} iterations`);
  return { method: 'fitted', requested: method, models: names, weights: fit.weights, bias: fit.bias, fittedOn };
}

/**
 * Why weights fitted on this validation window would chase noise, or null: fewer than
 * MIN_HELD_OUT_POSITIVES buyers (or non-buyers) there.
 */
export function tooFewToFit(positives: number, rows: number): string | null {
  const minority = Math.min(positives, rows - positives);
  if (minority >= MIN_HELD_OUT_POSITIVES) return null;
  const what = minority === positives ? 'buyers' : 'non-buyers';
  return `the validation window has ${minority} ${what} among ${rows} customers (fewer than ${MIN_HELD_OUT_POSITIVES}): too few to fit weights on`;
}
