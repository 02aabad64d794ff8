/**
 * What is published per product: the champion. Chosen on the training window's validation customers
 * among the ensemble and each single model (coordinator/ensemble's chooseChampion), checked against the
 * account's last published model on the same customers (decideChallenger; the last published model keeps
 * scoring when this night's is worse beyond noise), and calibrated (Platt) on those customers.
 * The decision goes to champion.json in the run folder; publish applies it and records it.
 */
import path from 'node:path';
import { DEFAULT_CALIBRATION, DEFAULT_CHAMPION, type Job } from '../../jobs/job.js';
import { log } from '../../core/log.js';
import { writeJsonDurably } from '../../core/durable-fs.js';
import { ModelError } from '../../core/errors.js';
import {
  applyCalibration,
  applyEnsemble,
  chooseChampion,
  decideChallenger,
  fitEnsemble,
  fitPlattCalibration,
  ENSEMBLE_CANDIDATE,
  type Calibration,
  type ChallengerDecision,
  type ChampionChoice,
  type EnsembleSpec,
} from '../ensemble/index.js';
import type { RunFolder } from './run-folder.js';
import type { ModelsFile } from './state.js';
import type { PreviousNight } from './previous-champion.js';

export interface ChampionModel {
  name: string;
  modelVersion: string;
  /** Artifact folder. */
  dir: string;
}

export interface ProductChampion {
  product: string;
  /** 'ensemble' or a model name (e.g. 'lstm.any', 'logistic.any', 'attention'). */
  candidate: string;
  /** 'this-night': chosen among this run's models; 'previous': the last published model keeps scoring. */
  source: 'this-night' | 'previous';
  /** Why this candidate, in words. */
  reason: string;
  warnings: string[];
  /** The models behind the published scores. */
  models: ChampionModel[];
  /** How the models combine when candidate is 'ensemble'. */
  ensemble: EnsembleSpec | null;
  calibration: Calibration;
  /** This night's selection among its candidates (null when champion.select is off). */
  selection: ChampionChoice | null;
  /** The comparison with the last published model, or why there was none. */
  challenger: {
    previous: { date: string; runId: string; candidate: string; modelVersions: string[] } | null;
    decision: ChallengerDecision | null;
    skipped: string | null;
  };
  validation: { rows: number; positives: number };
}

export interface ChampionFile {
  date: string;
  runId: string;
  products: Record<string, ProductChampion>;
}

export const championFile = (folder: RunFolder) => path.join(folder.dir, 'champion.json');

/** One product's validation rows (sorted customer ids), labels and each model's scores: what the ensemble was fitted on. */
export interface ProductValidation {
  ids: string[];
  labels: Int8Array;
  models: { name: string; modelVersion: string; scores: Float32Array }[];
}

export interface ChooseChampionsOptions {
  job: Job;
  folder: RunFolder;
  models: ModelsFile;
  ensembles: Record<string, EnsembleSpec>;
  validation: (product: string) => Promise<ProductValidation>;
  /** The last published night's champions scored on this night's customers, or why not. */
  previous: PreviousNight | { skipped: string };
}

export async function chooseChampions(o: ChooseChampionsOptions): Promise<ChampionFile> {
  const out: ChampionFile = { date: o.folder.date, runId: o.folder.runId, products: {} };
  for (const product of o.models.products) {
    const champion = await chooseProductChampion(o, product, await o.validation(product));
    for (const w of champion.warnings) log.warn('champion.warning', { product, warning: w });
    log.info('champion.chosen', { product, candidate: champion.candidate, source: champion.source, reason: champion.reason });
    out.products[product] = champion;
  }
  await writeJsonDurably(championFile(o.folder), out);
  return out;
}

async function chooseProductChampion(o: ChooseChampionsOptions, product: string, v: ProductValidation): Promise<ProductChampion> {
  const settings = o.job.champion ?? DEFAULT_CHAMPION;
  const warnings: string[] = [];
  const entries = new Map(o.models.models.map((m) => [m.modelVersion, m]));
  const modelsOf = (names: string[]): ChampionModel[] =>
    names.map((name) => {
      const m = v.models.find((x) => x.name === name)!;
      return { name, modelVersion: m.modelVersion, dir: entries.get(m.modelVersion)!.dir };
    });
  let positives = 0;
  for (const y of v.labels) if (y === 1) positives++;
  const validation = { rows: v.labels.length, positives };

  let spec = o.ensembles[product]!;
  let selection: ChampionChoice | null = null;
  let candidate = ENSEMBLE_CANDIDATE;
  let reason = settings.select ? '' : 'champion.select is off: the ensemble is published';
  if (positives < settings.minValidationPositives) {
    spec = fitEnsemble('mean', { labels: v.labels, models: v.models });
    reason = `only ${positives} validation buyers among ${v.labels.length} customers (fewer than champion.minValidationPositives = ${settings.minValidationPositives}): the mean of all models is published`;
    warnings.push(reason);
  } else if (settings.select) {
    const candidates = [{ name: ENSEMBLE_CANDIDATE, scores: applyEnsemble(spec, v.models) }, ...v.models.map((m) => ({ name: m.name, scores: m.scores }))];
    selection = chooseChampion(v.labels, candidates, { minPositives: settings.minValidationPositives, resamples: settings.resamples });
    candidate = selection.chosen;
    reason = selection.reason;
    if (selection.warning) warnings.push(selection.warning);
  }
  const chosenScores = candidate === ENSEMBLE_CANDIDATE ? applyEnsemble(spec, v.models) : v.models.find((m) => m.name === candidate)!.scores;

  let champion: ProductChampion = {
    product,
    candidate,
    source: 'this-night',
    reason,
    warnings,
    models: candidate === ENSEMBLE_CANDIDATE ? modelsOf(spec.models) : modelsOf([candidate]),
    ensemble: candidate === ENSEMBLE_CANDIDATE ? spec : null,
    calibration: { method: 'none', reason: 'not fitted yet' },
    selection,
    challenger: { previous: null, decision: null, skipped: null },
    validation,
  };
  let calibrateOn = chosenScores;

  const previous = 'skipped' in o.previous ? null : o.previous;
  const record = previous?.record.products[product];
  if (positives < settings.minValidationPositives) {
    champion.challenger.skipped = 'too few validation buyers to compare with the last published model: this night\'s models are published';
  } else if (!previous || !record) {
    champion.challenger.skipped = previous ? `the last published night (${previous.record.date}) has no ${product} model` : (o.previous as { skipped: string }).skipped;
  } else {
    champion.challenger.previous = { date: previous.record.date, runId: previous.record.runId, candidate: record.candidate, modelVersions: record.models.map((m) => m.modelVersion) };
    const earlier = previous.validationScores(product, v.ids);
    if ('missing' in earlier) {
      champion.challenger.skipped = earlier.missing;
      warnings.push(`not compared with the last published model: ${earlier.missing}`);
    } else {
      const decision = decideChallenger(v.labels, chosenScores, earlier.scores, { minPositives: settings.minValidationPositives, resamples: settings.resamples });
      champion.challenger.decision = decision;
      if (decision.winner === 'champion') {
        champion = { ...champion, candidate: record.candidate, source: 'previous', reason: decision.reason, models: record.models, ensemble: record.ensemble };
        calibrateOn = earlier.scores;
      } else {
        champion.reason = `${champion.reason}; ${decision.reason}`;
      }
    }
  }
  const calibration = o.job.calibration ?? DEFAULT_CALIBRATION;
  champion.calibration =
    calibration.method === 'platt'
      ? fitPlattCalibration(v.labels, calibrateOn, { negativeWeight: 1 / o.job.sampling.negativeRate })
      : { method: 'none', reason: 'calibration.method is none' };
  if (champion.calibration.method === 'none' && calibration.method === 'platt') warnings.push(`scores are not calibrated: ${champion.calibration.reason}`);
  return champion;
}

/** The candidate's raw scores from per-model columns (aligned rows), by the champion's recipe. */
export function candidateScores(champion: Pick<ProductChampion, 'candidate' | 'ensemble' | 'product'>, models: { name: string; scores: Float32Array }[]): Float32Array {
  if (champion.candidate === ENSEMBLE_CANDIDATE) {
    if (!champion.ensemble) throw new ModelError(`product ${champion.product}: the champion is the ensemble but its spec is missing from champion.json: rerun 'nextbuy evaluate'`);
    return applyEnsemble(champion.ensemble, models);
  }
  const m = models.find((x) => x.name === champion.candidate);
  if (!m) throw new ModelError(`product ${champion.product}: no scores of the champion "${champion.candidate}" (got ${models.map((x) => x.name).join(', ')}): rerun 'nextbuy score'`);
  return m.scores;
}

/** The published scores: the champion's scores (this night's models, or the last published ones), calibrated. */
export function publishedScores(champion: ProductChampion, thisNight: { name: string; scores: Float32Array }[], previous: { name: string; scores: Float32Array }[] | null): Float32Array {
  const models = champion.source === 'previous' ? previous : thisNight;
  if (!models) throw new ModelError(`product ${champion.product}: the last published model scores the night but its scores are missing: rerun 'nextbuy score'`);
  return applyCalibration(champion.calibration, candidateScores(champion, models));
}
