/**
 * Ensemble per product (fitted on the training window's validation customers), then metrics for every
 * model, ensemble and baseline on the label window after the scored date when it has happened — or, on
 * a real night whose future is unknown, on the validation customers of the training window.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DAY_MS, type Job } from '../../jobs/job.js';
import { formatDate, parseDateMs } from '../../jobs/job-file.js';
import { applyEnsemble, fitEnsemble, type EnsembleSpec } from '../ensemble/index.js';
import {
  buildReport,
  logisticRegressionBaseline,
  readCounts,
  recencyFrequencyScores,
  writeReport,
  type Metrics,
  type ProductEvaluationInput,
} from '../evaluate/index.js';
import type { PreprocessResult } from '../preprocess/index.js';
import { readScoreColumns, readScoreSetRows, scoreKey, type ScoreSetRows } from './collect.js';
import { type RunFolder } from './run-folder.js';
import { championStage, withChampions } from './champion-report.js';
import { writeJsonDurably } from '../../core/durable-fs.js';
import { files, type ModelEntry, type ModelsFile, type StageName } from './state.js';

export interface EvaluationSummary {
  /** Where the figures come from, in words. */
  windowLabel: string;
  kind: 'label-window' | 'validation';
  products: {
    product: string;
    n: number;
    positives: number;
    ensemble: Pick<Metrics, 'auc' | 'brier' | 'logLoss' | 'lift5' | 'lift20' | 'f1'>;
    baselines: { recencyFrequency: { auc: number | null } | null; logistic: { auc: number | null } | null };
  }[];
  reportHtml: string;
  reportJson: string;
}

export interface EnsembleFile {
  products: Record<string, EnsembleSpec & { modelVersions: string[] }>;
}

interface Validation {
  customerIds: string[];
  scores: number[];
  labels: number[];
}

export interface EvaluateStageOptions {
  job: Job;
  folder: RunFolder;
  pre: PreprocessResult;
  models: ModelsFile;
  timed: <T>(stage: StageName, fn: () => Promise<T>) => Promise<T>;
}

/** Each model's validation scores (validation.json), read once per stage however many products ask. */
type ValidationFiles = Map<string, Promise<Validation>>;

function readValidation(cache: ValidationFiles, m: ModelEntry): Promise<Validation> {
  let v = cache.get(m.dir);
  if (!v) cache.set(m.dir, (v = readFile(path.join(m.dir, 'validation.json'), 'utf8').then((t) => JSON.parse(t) as Validation)));
  return v;
}

/**
 * One product's validation rows as every model that scores it saw them: the customers all of them
 * validated (sorted), their labels, and each model's scores in that order.
 */
export async function alignedValidation(cache: ValidationFiles, models: ModelsFile, product: string) {
  const entries = modelsOf(models, product);
  const perModel = await Promise.all(
    entries.map(async (m) => {
      const v = await readValidation(cache, m);
      const width = m.architecture === 'attention' ? models.products.length : 1;
      const j = m.architecture === 'attention' ? models.products.indexOf(product) : 0;
      const rowOf = new Map(v.customerIds.map((id, i) => [id, i * width + j]));
      return { v, rowOf };
    }),
  );
  const ids = [...perModel[0]!.rowOf.keys()].filter((id) => perModel.every((p) => p.rowOf.has(id))).sort();
  const first = perModel[0]!;
  return {
    ids,
    labels: Int8Array.from(ids, (id) => first.v.labels[first.rowOf.get(id)!]!),
    models: entries.map((m, k) => ({
      name: m.name,
      modelVersion: m.modelVersion,
      scores: Float32Array.from(ids, (id) => perModel[k]!.v.scores[perModel[k]!.rowOf.get(id)!]!),
    })),
  };
}

function modelsOf(models: ModelsFile, product: string): ModelEntry[] {
  return models.models.filter((m) => m.product === product || m.architecture === 'attention');
}

export async function fitEnsembles(job: Job, models: ModelsFile, cache: ValidationFiles = new Map()): Promise<EnsembleFile> {
  const out: EnsembleFile = { products: {} };
  for (const product of models.products) {
    const v = await alignedValidation(cache, models, product);
    const spec = fitEnsemble(job.ensemble.method, { labels: v.labels, models: v.models });
    out.products[product] = { ...spec, modelVersions: v.models.map((m) => m.modelVersion) };
  }
  return out;
}

/** The ensembled scores of the night for each product, aligned with the score set's customers. */
export type NightScores = Awaited<ReturnType<typeof ensembledScores>>;

export async function ensembledScores(folder: RunFolder, pre: PreprocessResult, models: ModelsFile, ensembles: EnsembleFile) {
  const rows = await readScoreSetRows(pre.score!.shards.map((s) => s.file));
  const columns = await readScoreColumns(folder.scoresDir, rows);
  const perProduct = models.products.map((product) => {
    const entries = modelsOf(models, product);
    const modelScores = entries.map((m) => {
      const c = columns.get(scoreKey(m.modelVersion, product));
      if (!c) throw new Error(`no scores of ${m.modelVersion} for product ${product}: rerun 'nextbuy score'`);
      const missing = c.findIndex((x) => Number.isNaN(x));
      if (missing >= 0) throw new Error(`customer row ${missing} has no score from ${m.modelVersion}: rerun 'nextbuy score'`);
      return { name: m.name, modelVersion: m.modelVersion, scores: c };
    });
    const spec = ensembles.products[product]!;
    return { product, models: modelScores, ensemble: { spec, scores: applyEnsemble(spec, modelScores) } };
  });
  return { rows, perProduct };
}

export function labelsOf(rows: ScoreSetRows, product: string): Int8Array {
  const j = rows.products.indexOf(product);
  const p = rows.products.length;
  return Int8Array.from({ length: rows.customerIds.length }, (_, i) => rows.labels![i * p + j]!);
}

/** Returns the summary, and the night's ensembled scores so that publish in the same run need not read them again. */
export async function evaluateStage(o: EvaluateStageOptions): Promise<{ summary: EvaluationSummary; night: NightScores }> {
  const { job, folder, pre, models } = o;
  const validation: ValidationFiles = new Map();
  const { ensembles, champions } = await o.timed('ensemble', async () => {
    const e = await fitEnsembles(job, models, validation);
    await writeJsonDurably(files(folder).ensemble, e);
    return { ensembles: e, champions: await championStage({ job, folder, models, ensembles: e, validationOf: (p) => alignedValidation(validation, models, p) }) };
  });
  return o.timed('evaluate', async () => {
    const night = await ensembledScores(folder, pre, models, ensembles);
    const { rows, perProduct } = night;
    const labelled = rows.labels !== null;
    const train = await readScoreSetRows(pre.train!.shards.map((s) => s.file));
    const trainCounts = pre.countsFiles.train ? await readCounts(pre.countsFiles.train, train.customerIds) : null;
    const dateMs = parseDateMs(folder.date)!;
    const horizon = job.label.horizonDays;
    const evalCounts = labelled && pre.countsFiles.score ? await readCounts(pre.countsFiles.score, rows.customerIds) : null;
    const products: ProductEvaluationInput[] = [];
    for (const p of perProduct) {
      if (labelled) {
        const baselines = [];
        if (evalCounts) baselines.push({ name: 'recency-frequency', scores: recencyFrequencyScores(evalCounts) });
        if (evalCounts && trainCounts) {
          baselines.push({ name: 'logistic-counts', scores: logisticRegressionBaseline(trainCounts, labelsOf(train, p.product), evalCounts) });
        }
        products.push({ product: p.product, labels: labelsOf(rows, p.product), models: p.models, ensemble: p.ensemble, baselines });
      } else {
        products.push(await validationEvaluation(validation, models, p.product, ensembles, train, trainCounts));
      }
    }
    const report = buildReport({
      header: {
        account: job.account,
        date: folder.date,
        asOf: labelled ? folder.date : pre.train!.asOf,
        labelWindow: labelled
          ? { from: folder.date, to: formatDate(dateMs + (horizon - 1) * DAY_MS) }
          : { from: pre.train!.asOf, to: formatDate(dateMs - DAY_MS) },
        trainingWindow: { from: formatDate(parseDateMs(pre.train!.asOf)! - job.sequence.lookbackDays * DAY_MS), to: formatDate(parseDateMs(pre.train!.asOf)! - DAY_MS) },
        runId: folder.runId,
        modelVersions: Object.fromEntries(models.models.map((m) => [m.name, m.modelVersion])),
      },
      stats: {
        rowsRead: pre.stats.rowsRead,
        rowsRejected: pre.stats.rejected,
        trainCustomers: pre.train?.customers,
        scoredCustomers: pre.score?.customers,
        evaluatedOn: labelled ? 'label window after the scored date' : 'validation customers of the training window (the label window after the scored date has not happened yet)',
      },
      products,
    });
    const written = await writeReport(folder.reportDir, await withChampions(report, champions, { folder, night, labelsOf, validationOf: (p) => alignedValidation(validation, models, p) }));
    await writeJsonDurably(files(folder).evaluation, { labelled });
    const from = labelled ? folder.date : pre.train!.asOf;
    const to = labelled ? formatDate(dateMs + (horizon - 1) * DAY_MS) : formatDate(dateMs - DAY_MS);
    const summary: EvaluationSummary = {
      windowLabel: labelled
        ? `on the held-out label window ${from} .. ${to} (purchases after the scored date, features before it)`
        : `on the validation customers of the training window (labels ${from} .. ${to}); the window after ${folder.date} has not happened yet`,
      kind: labelled ? 'label-window' : 'validation',
      products: report.products.map((pr) => {
        const entry = (name: string) => pr.entries.find((e) => e.name === name)?.metrics ?? null;
        const ens = pr.entries.find((e) => e.kind === 'ensemble')?.metrics ?? pr.entries[0]!.metrics;
        return {
          product: pr.product,
          n: pr.n,
          positives: pr.positives,
          ensemble: { auc: ens.auc, brier: ens.brier, logLoss: ens.logLoss, lift5: ens.lift5, lift20: ens.lift20, f1: ens.f1 },
          baselines: {
            recencyFrequency: entry('recency-frequency') && { auc: entry('recency-frequency')!.auc },
            logistic: entry('logistic-counts') && { auc: entry('logistic-counts')!.auc },
          },
        };
      }),
      reportHtml: written.html,
      reportJson: written.json,
    };
    return { summary, night };
  });
}

/** Evaluation on the training window's validation customers, when the night's labels are not known yet. */
async function validationEvaluation(
  cache: ValidationFiles,
  models: ModelsFile,
  product: string,
  ensembles: EnsembleFile,
  train: ScoreSetRows,
  trainCounts: Awaited<ReturnType<typeof readCounts>> | null,
): Promise<ProductEvaluationInput> {
  const { ids, labels, models: modelScores } = await alignedValidation(cache, models, product);
  const spec = ensembles.products[product]!;
  const baselines = [];
  if (trainCounts) {
    const validation = new Set(ids);
    const trainLabels = labelsOf(train, product);
    const pick = (keep: (id: string) => boolean) => {
      const idx = train.customerIds.map((id, i) => [id, i] as const).filter(([id]) => keep(id)).map(([, i]) => i);
      return {
        counts: { ...trainCounts, n: idx.length, counts: trainCounts.counts.map((c) => Float64Array.from(idx, (i) => c[i]!)), daysSinceLast: Float64Array.from(idx, (i) => trainCounts.daysSinceLast[i]!) },
        labels: Int8Array.from(idx, (i) => trainLabels[i]!),
        ids: idx.map((i) => train.customerIds[i]!),
      };
    };
    const fitPart = pick((id) => !validation.has(id));
    const evalPart = pick((id) => validation.has(id));
    const order = new Map(evalPart.ids.map((id, i) => [id, i]));
    const align = (s: Float32Array) => Float32Array.from(ids, (id) => s[order.get(id)!]!);
    baselines.push({ name: 'recency-frequency', scores: align(recencyFrequencyScores(evalPart.counts)) });
    baselines.push({ name: 'logistic-counts', scores: align(logisticRegressionBaseline(fitPart.counts, fitPart.labels, evalPart.counts)) });
  }
  return { product, labels, models: modelScores, ensemble: { spec, scores: applyEnsemble(spec, modelScores) }, baselines };
}
