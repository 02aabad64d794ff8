/**
 * Ensemble per product (fitted on the training window's validation customers), then metrics for every
 * model, ensemble and baseline on the label window after the scored date when it has happened — or, on
 * a real night whose future is unknown, on the validation customers of the training window.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../../core/errors.js';
import { log as defaultLog, type Logger } from '../../core/log.js';
import { DAY_MS, type Job } from '../../jobs/job.js';
import { formatDate, parseDateMs } from '../../jobs/job-file.js';
import { applyEnsemble, fitEnsemble, type EnsembleSpec } from '../ensemble/index.js';
import {
  buildReport,
  positivesWarning,
  logisticRegressionBaseline,
  LOGISTIC_COUNTS,
  RECENCY_FREQUENCY,
  recencyFrequencyScores,
  selectRows,
  stageMs,
  withAggregates,
  writeReport,
  type AggregateReader,
  type EvaluationReport,
  type ReportEntry,
  type Metrics,
  type ProductEvaluationInput,
  type RunStatistics,
  type TrainingCurve,
  type Verdict,
} from '../evaluate/index.js';
import { jobAggregateLayout, type AggregateLayout } from '../features/index.js';
import type { PreprocessResult } from '../preprocess/index.js';
import { readScoreColumns, readScoreSetRows, scoreKey, type ScoreSetRows } from './collect.js';
import { type RunFolder } from './run-folder.js';
import { championStage, nightPublishedScores, withChampions } from './champion-report.js';
import type { ProductChampion } from './champion-stage.js';
import { writeJsonDurably } from '../../core/durable-fs.js';
import { files, type ModelEntry, type ModelsFile, type StageName } from './state.js';
import { earlierNights } from './report-history.js';
import type { WorkerEventCounts } from './worker-events.js';

/** An AUC and its 95 % DeLong interval (null bounds where undefined). */
export interface SummaryAuc {
  name: string;
  auc: number | null;
  lower: number | null;
  upper: number | null;
}

export interface EvaluationSummary {
  /** Where the figures come from, in words. */
  windowLabel: string;
  kind: 'label-window' | 'validation';
  products: {
    product: string;
    n: number;
    positives: number;
    /** The published scores' metrics (the ensemble's). */
    ensemble: Pick<Metrics, 'auc' | 'brier' | 'logLoss' | 'lift5' | 'lift20' | 'f1'>;
    published: SummaryAuc | null;
    /** recency-frequency and logistic-counts, where computed. */
    baselines: SummaryAuc[];
    bestBaseline: string | null;
    verdict: Verdict;
    /** For people: too few positives somewhere (report.json's flags in words); null when none. */
    warning: string | null;
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
  /** Where warnings (too few positives) go. @default the process logger */
  logger?: Logger;
  /** Stage durations so far (ms), for the report's statistics; read when the report is built. @default none */
  timings?: Partial<Record<StageName, number>>;
  /** This invocation's workers (how many, and what happened to them), when it started any. @default none */
  workers?: () => { count: number; events: WorkerEventCounts } | null;
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
      // With training.snapshots > 1 a customer is validated once per snapshot, snapshot 0 (the training set's own
      // as-of date) first: that row is kept, the one the training set's rows (collect.ts) and the last published
      // night's scores are read for, so labels, features and scores of one customer are of one date.
      const rowOf = new Map<string, number>();
      v.customerIds.forEach((id, i) => {
        if (!rowOf.has(id)) rowOf.set(id, i * width + j);
      });
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

export async function fitEnsembles(job: Job, models: ModelsFile, cache: ValidationFiles = new Map(), logger: Logger = defaultLog): Promise<EnsembleFile> {
  const out: EnsembleFile = { products: {} };
  for (const product of models.products) {
    const v = await alignedValidation(cache, models, product);
    const spec = fitEnsemble(job.ensemble.method, { labels: v.labels, models: v.models });
    if (spec.fallbackReason && spec.models.length > 1) logger.warn('ensemble.fell_back', { product, requested: spec.requested, used: spec.method, reason: spec.fallbackReason });
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

function count(labels: Int8Array): number {
  let c = 0;
  for (const y of labels) c += y;
  return c;
}

/** The features' layout, or null when the shards carry no aggregate features (the baselines are then left out). */
function featureLayout(job: Job, pre: PreprocessResult): AggregateLayout | null {
  if (!pre.aggregateFeatures || pre.aggregateFeatures.length === 0) return null;
  const layout = jobAggregateLayout(job);
  if (layout.names.join(',') !== pre.aggregateFeatures.join(',')) {
    throw new InputError(`preprocess.json's aggregate features do not match ${job.file}'s: rerun preprocess with this job file`);
  }
  return layout;
}

/** Runs `fn` with a reader of `set`'s aggregate features for `customerIds`, or with null without a layout. */
async function withSetFeatures<T>(
  pre: PreprocessResult,
  layout: AggregateLayout | null,
  set: 'train' | 'score',
  customerIds: readonly string[],
  fn: (reader: AggregateReader | null) => Promise<T>,
): Promise<T> {
  const shards = pre[set]?.shards.map((s) => s.file);
  return layout && shards ? withAggregates(shards, layout, customerIds, fn) : fn(null);
}

/** What the published scores are, in a word: the champion candidate, from which night, calibrated or not. */
function publishedNote(c: ProductChampion): string {
  return `${c.candidate}${c.source === 'previous' ? ' (the previous night\'s model)' : ''}, ${c.calibration.method === 'none' ? 'not calibrated' : `${c.calibration.method}-calibrated`}`;
}

/** Returns the summary, and the night's ensembled scores so that publish in the same run need not read them again. */
export async function evaluateStage(o: EvaluateStageOptions): Promise<{ summary: EvaluationSummary; night: NightScores }> {
  const { job, folder, models } = o;
  const pre = o.pre;
  const logger = o.logger ?? defaultLog;
  const validation: ValidationFiles = new Map();
  const { ensembles, champions } = await o.timed('ensemble', async () => {
    const e = await fitEnsembles(job, models, validation, logger);
    await writeJsonDurably(files(folder).ensemble, e);
    return { ensembles: e, champions: await championStage({ job, folder, models, ensembles: e, validationOf: (p) => alignedValidation(validation, models, p) }) };
  });
  return o.timed('evaluate', async () => {
    const night = await ensembledScores(folder, pre, models, ensembles);
    const { rows, perProduct } = night;
    const labelled = rows.labels !== null;
    const train = await readScoreSetRows(pre.train!.shards.map((s) => s.file));
    const dateMs = parseDateMs(folder.date)!;
    const horizon = job.label.horizonDays;
    const layout = featureLayout(job, pre);
    const published = labelled ? await nightPublishedScores(folder, night, champions) : null;
    const earlier = await earlierNights(folder.outDir, folder.account, folder.date);
    const context = (product: string) => ({ training: trainingCurves(models, product), earlierNights: earlier.get(product) ?? [] });
    const products: ProductEvaluationInput[] = await withSetFeatures(pre, layout, 'train', train.customerIds, (trainFeatures) =>
      withSetFeatures(pre, labelled ? layout : null, 'score', rows.customerIds, async (evalFeatures) => {
        const out: ProductEvaluationInput[] = [];
        for (const p of perProduct) {
          const positives = {
            training: pre.train?.positives[p.product] ?? null,
            validation: count((await alignedValidation(validation, models, p.product)).labels),
          };
          if (labelled) {
            const baselines = [];
            if (evalFeatures) {
              const evalAgg = await evalFeatures.product(p.product);
              baselines.push({ name: RECENCY_FREQUENCY, scores: recencyFrequencyScores(evalAgg), probability: false });
              if (trainFeatures) {
                const trainAgg = await trainFeatures.product(p.product);
                baselines.push({ name: LOGISTIC_COUNTS, scores: logisticRegressionBaseline(trainAgg, labelsOf(train, p.product), evalAgg) });
              }
            }
            const champion = champions.products[p.product];
            const publishedScores = champion && published?.get(p.product) ? { scores: published.get(p.product)!, note: publishedNote(champion) } : undefined;
            out.push({ product: p.product, labels: labelsOf(rows, p.product), customerIds: rows.customerIds, models: p.models, ensemble: p.ensemble, publishedScores, baselines, positives, ...context(p.product) });
          } else {
            out.push({ ...(await validationEvaluation(validation, models, p.product, ensembles, train, trainFeatures)), positives, ...context(p.product) });
          }
        }
        return out;
      }),
    );
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
      stats: runStatistics(pre, labelled, layout !== null, o.timings, o.workers?.() ?? null),
      products,
    });
    for (const pr of report.products) {
      for (const flag of pr.flags) logger.warn('evaluate.few_positives', { product: pr.product, set: flag.set, positives: flag.positives, minimum: flag.minimum });
    }
    const written = await writeReport(folder.reportDir, await withChampions(report, champions, { folder, night, labelsOf, validationOf: (p) => alignedValidation(validation, models, p), published: published ?? undefined }));
    await writeJsonDurably(files(folder).evaluation, { labelled });
    const from = labelled ? folder.date : pre.train!.asOf;
    const to = labelled ? formatDate(dateMs + (horizon - 1) * DAY_MS) : formatDate(dateMs - DAY_MS);
    const summary = evaluationSummary(report, {
      windowLabel: labelled
        ? `on the held-out label window ${from} .. ${to} (purchases after the scored date, features before it)`
        : `on the validation customers of the training window (labels ${from} .. ${to}); the window after ${folder.date} has not happened yet`,
      kind: labelled ? 'label-window' : 'validation',
      reportHtml: written.html,
      reportJson: written.json,
    });
    return { summary, night };
  });
}

/** The report's run statistics (run-stats.ts labels them): what preprocess counted, stage durations so far, workers. */
function runStatistics(
  pre: PreprocessResult,
  labelled: boolean,
  baselines: boolean,
  timings: Partial<Record<StageName, number>> | undefined,
  workers: { count: number; events: WorkerEventCounts } | null,
): RunStatistics {
  const rows = (set: PreprocessResult['train']) => set?.shards.reduce((s, shard) => s + shard.rows, 0);
  const durations = stageMs(timings);
  return {
    inputFiles: pre.stats.inputFiles,
    rowsRead: pre.stats.rowsRead,
    rowsAccepted: pre.stats.rowsAccepted,
    rowsRejected: pre.stats.rejected,
    outsideWindow: pre.stats.outsideWindow,
    ...(pre.stats.freshness?.allowedStale ? { staleInputAllowed: pre.stats.freshness.stale ?? 'yes' } : {}),
    trainCustomers: pre.train?.customers,
    scoredCustomers: pre.score?.customers,
    scoredWithoutHistory: pre.score?.noHistory,
    trainSequences: rows(pre.train),
    scoreSequences: rows(pre.score),
    shards: (pre.train?.shards.length ?? 0) + (pre.score?.shards.length ?? 0),
    ...(durations ? { stageMs: durations } : {}),
    ...(workers ? { workers: workers.count, workersLost: workers.events.lost, shardRetries: workers.events.reLeases } : {}),
    evaluatedOn: labelled ? 'label window after the scored date' : 'validation customers of the training window (the label window after the scored date has not happened yet)',
    ...(baselines ? {} : { baselines: 'none: the shards carry no aggregate features' }),
  };
}

/** Each model's recorded history that scores `product` (models.json), for the report's training curves. */
function trainingCurves(models: ModelsFile, product: string): TrainingCurve[] {
  return modelsOf(models, product).map((m) => ({
    name: m.name,
    modelVersion: m.modelVersion,
    bestEpoch: m.bestEpoch,
    epochs: (m.history ?? []).map((h) => ({ epoch: h.epoch, trainLoss: finiteOrNull(h.trainLoss), validationAuc: finiteOrNull(h.validationAuc) })),
  }));
}

function finiteOrNull(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** What the run summary shows of a report: per product the published scores' figures, every AUC with its interval, the verdict and the warnings. */
export function evaluationSummary(report: EvaluationReport, o: Omit<EvaluationSummary, 'products'>): EvaluationSummary {
  const summaryAuc = (e: ReportEntry): SummaryAuc => ({ name: e.name, auc: e.metrics.auc, lower: e.aucCi?.lower ?? null, upper: e.aucCi?.upper ?? null });
  return {
    ...o,
    products: report.products.map((pr) => {
      const published = pr.entries.find((e) => e.name === pr.published) ?? null;
      const ens = published?.metrics ?? pr.entries[0]!.metrics;
      return {
        product: pr.product,
        n: pr.n,
        positives: pr.positives,
        ensemble: { auc: ens.auc, brier: ens.brier, logLoss: ens.logLoss, lift5: ens.lift5, lift20: ens.lift20, f1: ens.f1 },
        published: published && summaryAuc(published),
        baselines: pr.entries.filter((e) => e.kind === 'baseline').map(summaryAuc),
        bestBaseline: pr.bestBaseline,
        verdict: pr.verdict,
        warning: positivesWarning(pr.flags),
      };
    }),
  };
}

/** Evaluation on the training window's validation customers, when the night's labels are not known yet. */
async function validationEvaluation(
  cache: ValidationFiles,
  models: ModelsFile,
  product: string,
  ensembles: EnsembleFile,
  train: ScoreSetRows,
  trainFeatures: AggregateReader | null,
): Promise<ProductEvaluationInput> {
  const { ids, labels, models: modelScores } = await alignedValidation(cache, models, product);
  const spec = ensembles.products[product]!;
  const baselines = [];
  if (trainFeatures) {
    const all = await trainFeatures.product(product);
    const trainLabels = labelsOf(train, product);
    const rowOf = new Map(train.customerIds.map((id, i) => [id, i]));
    const validationRows = ids.map((id) => rowOf.get(id)!);
    const isValidation = new Set(ids);
    const fitRows = train.customerIds.flatMap((id, i) => (isValidation.has(id) ? [] : [i]));
    const evalPart = selectRows(all, validationRows);
    baselines.push({ name: RECENCY_FREQUENCY, scores: recencyFrequencyScores(evalPart), probability: false });
    baselines.push({
      name: LOGISTIC_COUNTS,
      scores: logisticRegressionBaseline(selectRows(all, fitRows), Int8Array.from(fitRows, (i) => trainLabels[i]!), evalPart),
    });
  }
  return { product, labels, customerIds: ids, models: modelScores, ensemble: { spec, scores: applyEnsemble(spec, modelScores) }, baselines };
}
