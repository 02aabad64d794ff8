/**
 * Stage 6, ensemble: per product, combine the models' scores by their mean or by weights fitted on the
 * validation window; the resulting spec records the method and weights.
 */
export { fitEnsemble } from './fit.js';
export type { FitEnsembleOptions } from './fit.js';
export { applyEnsemble } from './apply.js';
export type { EnsembleSpec, EnsembleMethod, ModelScores } from './spec.js';
