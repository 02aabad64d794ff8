/** The champion step of the evaluate task, and what the report says about each product's champion. */
import type { Job } from '../../jobs/job.js';
import { computeMetrics, type EvaluationReport } from '../evaluate/index.js';
import { applyCalibration } from '../ensemble/index.js';
import { candidateScores, chooseChampions, publishedScores, type ChampionFile, type ProductChampion, type ProductValidation } from './champion-stage.js';
import type { ScoreSetRows } from './collect.js';
import type { EnsembleFile, NightScores } from './evaluate-stage.js';
import { loadPreviousNight, type PreviousNight } from './previous-champion.js';
import type { RunFolder } from './run-folder.js';
import type { ModelsFile } from './state.js';

export async function championStage(o: {
  job: Job;
  folder: RunFolder;
  models: ModelsFile;
  ensembles: EnsembleFile;
  validationOf: (product: string) => Promise<ProductValidation>;
  /** The night's published scores per product, when already computed (nightPublishedScores). */
  published?: Map<string, Float32Array>;
}): Promise<ChampionFile> {
  return chooseChampions({
    job: o.job,
    folder: o.folder,
    models: o.models,
    ensembles: o.ensembles.products,
    validation: o.validationOf,
    previous: await loadPreviousNight(o.folder).catch((e: Error) => ({ skipped: `the last published night's scores of this night cannot be read (${e.message}): rerun 'nextbuy score'` })),
  });
}

/** The published scores per product, aligned with the night's score-set rows. */
export async function nightPublishedScores(folder: RunFolder, night: NightScores, champions: ChampionFile): Promise<Map<string, Float32Array>> {
  const needsPrevious = Object.values(champions.products).some((c) => c.source === 'previous');
  const previous = needsPrevious ? await loadPreviousNight(folder) : null;
  const out = new Map<string, Float32Array>();
  for (const p of night.perProduct) {
    const champion = champions.products[p.product]!;
    const earlier = champion.source === 'previous' && previous && !('skipped' in previous) ? previous.nightModels(p.product, night.rows) : null;
    out.set(p.product, publishedScores(champion, p.models, earlier));
  }
  return out;
}

export interface ChampionReportContext {
  folder: RunFolder;
  night: NightScores;
  labelsOf: (rows: ScoreSetRows, product: string) => Int8Array;
  validationOf: (product: string) => Promise<ProductValidation>;
  /** The night's published scores per product, when already computed (nightPublishedScores). */
  published?: Map<string, Float32Array>;
}

/**
 * Adds a `champion` object to each product of the report: what is published and why, its calibration,
 * and the published (calibrated) scores' AUC, Brier score and mean against the base rate — on the label
 * window when it has happened, else on the validation customers.
 */
export async function withChampions(report: EvaluationReport, champions: ChampionFile, c: ChampionReportContext): Promise<EvaluationReport> {
  const labelled = c.night.rows.labels !== null;
  const published = labelled ? (c.published ?? (await nightPublishedScores(c.folder, c.night, champions))) : null;
  const previous = labelled ? null : await lazyPrevious(c.folder, champions);
  const products = [];
  for (const pr of report.products) {
    const champion = champions.products[pr.product];
    if (!champion) {
      products.push(pr);
      continue;
    }
    let labels: Int8Array;
    let scores: Float32Array;
    if (published) {
      labels = c.labelsOf(c.night.rows, pr.product);
      scores = published.get(pr.product)!;
    } else {
      const v = await c.validationOf(pr.product);
      labels = v.labels;
      const raw = champion.source === 'previous' && previous ? previous.validationScores(pr.product, v.ids) : { scores: candidateScores(champion, v.models) };
      if ('missing' in raw) {
        products.push({ ...pr, champion: summary(champion, null) });
        continue;
      }
      scores = applyCalibration(champion.calibration, raw.scores);
    }
    const m = computeMetrics(labels, scores);
    let sum = 0;
    for (const s of scores) sum += s;
    products.push({
      ...pr,
      champion: summary(champion, {
        on: labelled ? 'label window' : 'validation customers (the ones the choice and the calibration were fitted on)',
        auc: m.auc,
        brier: m.brier,
        logLoss: m.logLoss,
        meanScore: scores.length > 0 ? sum / scores.length : null,
        baseRate: m.baseRate,
      }),
    });
  }
  return { ...report, products };
}

async function lazyPrevious(folder: RunFolder, champions: ChampionFile): Promise<PreviousNight | null> {
  if (!Object.values(champions.products).some((c) => c.source === 'previous')) return null;
  const p = await loadPreviousNight(folder);
  return 'skipped' in p ? null : p;
}

function summary(c: ProductChampion, published: Record<string, unknown> | null) {
  return {
    candidate: c.candidate,
    source: c.source,
    reason: c.reason,
    warnings: c.warnings,
    modelVersions: c.models.map((m) => m.modelVersion),
    ensemble: c.ensemble,
    calibration: c.calibration,
    validation: c.validation,
    candidates: c.selection?.candidates ?? null,
    challenger: c.challenger,
    published,
  };
}
