/**
 * Stage 6, ensemble: per product, combine the models' scores by their mean or by weights fitted on the
 * validation window; the resulting spec records the method and weights. Then the champion: the
 * candidate (a model or the ensemble) published, chosen on validation, checked against the last
 * published one, and calibrated.
 */
export { fitEnsemble } from './fit.js';
export type { FitEnsembleOptions } from './fit.js';
export { applyEnsemble } from './apply.js';
export type { EnsembleSpec, EnsembleMethod, ModelScores } from './spec.js';
export { aucOf, pairedAucComparison } from './compare.js';
export type { PairedAucComparison, PairedComparisonOptions } from './compare.js';
export { chooseChampion, simplicity, notWorseBeyondNoise, MIN_VALIDATION_POSITIVES, ENSEMBLE_CANDIDATE, AUC_TOLERANCE } from './champion.js';
export type { ChampionCandidate, ChampionChoice, CandidateResult, ChooseChampionOptions } from './champion.js';
export { decideChallenger } from './challenger.js';
export type { ChallengerDecision, DecideChallengerOptions } from './challenger.js';
export { fitPlattCalibration, applyCalibration } from './calibrate.js';
export type { Calibration, FitCalibrationOptions } from './calibrate.js';
