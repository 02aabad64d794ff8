/**
 * The evaluation report: for every product, each trained model, the ensemble and the baselines, scored
 * on the same customers and the same label window after training, with the run's header and stats; every
 * AUC with its 95 % DeLong interval, the paired difference between the published scores and the best
 * baseline, a verdict, and flags for products with too few positives.
 *
 * report.json (formatVersion 1; fields are only ever added), per product:
 *   product, n, positives (evaluation window), baseRate, ensemble (spec or null)
 *   positivesBySet     { training?, validation?, evaluation } positives per set, where known
 *   entries[]          { name, kind: model|ensemble|baseline, modelVersion, note, metrics (metrics.auc …), aucCi }
 *                      aucCi: { auc, se, lower, upper } (95 % DeLong) or null without both classes
 *   bestByAuc          the entry with the highest AUC
 *   published          the entry whose scores are published (the ensemble when there is one)
 *   bestBaseline       the baseline with the highest AUC, or null
 *   comparison         { published, baseline, difference, se, lower, upper, pValue }: AUC(published) −
 *                      AUC(bestBaseline) on the same customers, paired 95 % DeLong interval; or null
 *   verdict            { outcome: beats|loses|level|undetermined, text }
 *   flags[]            { code, set, positives, minimum, message } (see positives.ts)
 *   entries[].reliability  [{ count, meanPredicted, observedRate }]: equal-count bins of the entry's scores
 *                      (score-tables.ts); null for a ranking score that is not a probability
 *   deciles            [{ decile, customers, buyers, rate, lift, minScore, maxScore }] of the published scores, or null
 *   histogram          [{ lower, upper, customers, buyers }] of the published scores on their own range, or null
 *   training           [{ name, modelVersion, bestEpoch, epochs: [{ epoch, trainLoss, validationAuc }] }]
 *   earlierNights      [{ date, runId, published, auc, lower, upper, n, positives, evaluatedOn, flagged }], oldest first
 *   audiences          [{ action, customers }] per action as published, 'none' last (added by publish; absent before)
 *   warnings           strings added by publish (e.g. every audience empty); absent when none
 * stats: the run's figures (run-stats.ts's RunStatistics).
 */
import { InputError } from '../../core/errors.js';
import { aucInterval, type AucInterval } from './delong.js';
import { computeMetrics, type Metrics, type MetricsOptions } from './metrics.js';
import type { RunStatistics } from './run-stats.js';
import { positivesFlags, type PositivesBySet, type ProductFlag } from './positives.js';
import { compare, verdictOf, type Comparison, type Verdict } from './verdict.js';
import { decileTable, reliabilityBins, scoreHistogram, type DecileRow, type HistogramBin, type ReliabilityBin } from './score-tables.js';

export interface ReportHeader {
  account: string;
  /** The scored date D. */
  date: string;
  /** Features use events before this instant (usually D). */
  asOf: string;
  /** Labels come from purchases in this window. */
  labelWindow: { from: string; to: string };
  /** The window the models were trained on, when known. */
  trainingWindow?: { from: string; to: string };
  runId: string;
  /** Model name → version id. */
  modelVersions: Record<string, string>;
  /** Left out unless given, so that the same inputs give the same report bytes. */
  generatedAt?: string;
}

/** What the report shows of an ensemble (coordinator/ensemble's EnsembleSpec fits this shape). */
export interface EnsembleSummary {
  method: string;
  models: string[];
  weights: number[];
  bias?: number;
  fittedOn?: { rows: number; positives: number };
  fallbackReason?: string;
}

export interface ProductEvaluationInput {
  product: string;
  /** 1 = bought in the label window; the row order every score array below follows. */
  labels: Int8Array;
  sampleWeights?: Float32Array;
  models: { name: string; modelVersion: string; scores: Float32Array }[];
  ensemble?: { spec: EnsembleSummary; scores: Float32Array };
  /**
   * E.g. the recency-frequency heuristic and the logistic regression on counts. `probability: false` for a
   * ranking score (left out of the reliability chart). @default probability true
   */
  baselines: { name: string; scores: Float32Array; note?: string; probability?: boolean }[];
  /** The customers' ids in the labels' row order: the deciles then break ties as the prediction table's rank does. @default row order */
  customerIds?: readonly string[];
  /** Each model's training history. @default [] */
  training?: TrainingCurve[];
  /** The same product's published AUC on earlier committed nights of the account, oldest first. @default [] */
  earlierNights?: EarlierNight[];
  /**
   * The scores as published (the champion, calibrated), when they are not one of the entries above: an entry
   * of kind `published`, named `published`, which the verdict then judges.
   */
  publishedScores?: { scores: Float32Array; note: string };
  /** The entry whose scores are published. @default 'published' when publishedScores is given, else 'ensemble' when given, else the first model */
  published?: string;
  /** Positives in training and validation, for the flags (the evaluation's come from `labels`). @default unknown */
  positives?: { training?: number | null; validation?: number | null };
}

/** One model's figures per epoch (or boosting round), as training recorded them. */
export interface TrainingCurve {
  name: string;
  modelVersion: string;
  /** The epoch whose weights were kept. */
  bestEpoch: number;
  epochs: { epoch: number; trainLoss: number | null; validationAuc: number | null }[];
}

/** What an earlier committed night's report said of the same product's published scores. */
export interface EarlierNight {
  date: string;
  runId: string;
  /** The published entry that night (for the entry 'published', its champion's name). */
  published: string | null;
  auc: number | null;
  lower: number | null;
  upper: number | null;
  n: number;
  positives: number;
  /** 'label window' or 'validation customers'. */
  evaluatedOn: string;
  /** That night had too few positives for this product. */
  flagged: boolean;
}

export interface AudienceSize {
  action: string;
  customers: number;
}

export interface ReportInput {
  header: ReportHeader;
  /** Run statistics from the orchestrator, shown as a labelled table (see run-stats.ts for the known keys). @default {} */
  stats?: RunStatistics | Record<string, unknown>;
  products: ProductEvaluationInput[];
  metrics?: MetricsOptions;
}

/** The name of the published scores' entry (see ProductEvaluationInput.publishedScores). */
export const PUBLISHED = 'published';

export type EntryKind = 'model' | 'ensemble' | 'published' | 'baseline';

export interface ReportEntry {
  name: string;
  kind: EntryKind;
  modelVersion: string | null;
  note: string | null;
  metrics: Metrics;
  /** The AUC with its 95 % DeLong interval; null without both classes or with sample weights. */
  aucCi: AucInterval | null;
  /** Equal-count bins of the scores (the reliability chart); null for a ranking score that is not a probability. */
  reliability: ReliabilityBin[] | null;
}

export interface ProductReport {
  product: string;
  n: number;
  positives: number;
  baseRate: number;
  ensemble: EnsembleSummary | null;
  /** Models in input order, then the ensemble, then the baselines. */
  entries: ReportEntry[];
  /** The entry with the highest AUC (first on ties); null when AUC is undefined. */
  bestByAuc: string | null;
  positivesBySet: PositivesBySet;
  /** The entry whose scores are published; null without models. */
  published: string | null;
  /** The baseline with the highest AUC (first on ties); null without baselines or AUCs. */
  bestBaseline: string | null;
  /** AUC(published) − AUC(bestBaseline), paired DeLong; null when either is undefined. */
  comparison: Comparison | null;
  verdict: Verdict;
  /** Too few positives somewhere: these figures are noise. Empty when none. */
  flags: ProductFlag[];
  /** Deciles of the published scores; null without published scores. */
  deciles: DecileRow[] | null;
  /** The published scores' histogram on their own range; null without published scores. */
  histogram: HistogramBin[] | null;
  training: TrainingCurve[];
  earlierNights: EarlierNight[];
  /** Customers per action as published (publish adds them); absent before publish. */
  audiences?: AudienceSize[];
  /** Added by publish, e.g. every audience empty. */
  warnings?: string[];
}

export interface EvaluationReport {
  formatVersion: 1;
  header: ReportHeader;
  stats: Record<string, unknown>;
  products: ProductReport[];
}

/** Where a report's figures come from, in two words: 'label window' or 'validation customers' (from stats.evaluatedOn). */
export function evaluatedOnOf(report: Pick<EvaluationReport, 'stats'>): string {
  const on = report.stats?.evaluatedOn;
  return typeof on === 'string' && on.startsWith('label window') ? 'label window' : 'validation customers';
}

export function buildReport(input: ReportInput): EvaluationReport {
  const seen = new Set<string>();
  const products = input.products.map((p): ProductReport => {
    if (seen.has(p.product)) throw new InputError(`product "${p.product}" appears twice in the evaluation input`);
    seen.add(p.product);
    const score = (name: string, kind: EntryKind, scores: Float32Array, modelVersion: string | null, note: string | null, probability = true): ReportEntry => {
      if (scores.length !== p.labels.length) {
        throw new InputError(
          `product "${p.product}": ${kind} "${name}" has ${scores.length} scores for ${p.labels.length} labelled customers; every score array must follow the labels' row order`,
        );
      }
      const metrics = computeMetrics(p.labels, scores, p.sampleWeights, input.metrics);
      // DeLong's variance is for unweighted rows.
      const reliability = probability ? reliabilityBins(p.labels, scores, p.sampleWeights) : null;
      return { name, kind, modelVersion, note, metrics, aucCi: p.sampleWeights ? null : aucInterval(p.labels, scores), reliability };
    };
    const entries = [
      ...p.models.map((m) => score(m.name, 'model', m.scores, m.modelVersion, null)),
      ...(p.ensemble ? [score('ensemble', 'ensemble', p.ensemble.scores, null, ensembleNote(p.ensemble.spec))] : []),
      ...(p.publishedScores ? [score(PUBLISHED, 'published', p.publishedScores.scores, null, p.publishedScores.note)] : []),
      ...p.baselines.map((b) => score(b.name, 'baseline', b.scores, null, b.note ?? null, b.probability ?? true)),
    ];
    const names = entries.map((e) => e.name);
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate) throw new InputError(`product "${p.product}": two entries are named "${duplicate}"; give each model and baseline its own name`);
    let best: ReportEntry | null = null;
    for (const e of entries) {
      if (e.metrics.auc !== null && (best === null || e.metrics.auc > best.metrics.auc!)) best = e;
    }
    const first = entries[0]?.metrics;
    const positives = first?.positives ?? countPositives(p.labels);
    const scoresOf = new Map(
      [...p.models, ...(p.ensemble ? [{ name: 'ensemble', scores: p.ensemble.scores }] : []), ...(p.publishedScores ? [{ name: PUBLISHED, scores: p.publishedScores.scores }] : []), ...p.baselines].map((e) => [e.name, e.scores]),
    );
    const published = p.published ?? (p.publishedScores ? PUBLISHED : p.ensemble ? 'ensemble' : (p.models[0]?.name ?? null));
    if (published !== null && !scoresOf.has(published)) throw new InputError(`product "${p.product}": the published entry "${published}" is not among its models or ensemble`);
    let bestBaseline: ReportEntry | null = null;
    for (const e of entries) {
      if (e.kind === 'baseline' && e.metrics.auc !== null && (bestBaseline === null || e.metrics.auc > bestBaseline.metrics.auc!)) bestBaseline = e;
    }
    const comparison =
      published !== null && bestBaseline !== null && !p.sampleWeights
        ? compare(p.labels, { name: published, scores: scoresOf.get(published)! }, { name: bestBaseline.name, scores: scoresOf.get(bestBaseline.name)! })
        : null;
    const why =
      published === null ? 'no published scores' : p.baselines.length === 0 ? 'no baseline to compare with' : p.sampleWeights ? 'weighted rows' : 'fewer than 2 positives or 2 negatives';
    const positivesBySet: PositivesBySet = { ...p.positives, evaluation: positives };
    if (p.customerIds && p.customerIds.length !== p.labels.length) {
      throw new InputError(`product "${p.product}": ${p.customerIds.length} customer ids for ${p.labels.length} labelled customers; they must follow the labels' row order`);
    }
    const publishedScores = published === null ? null : scoresOf.get(published)!;
    return {
      product: p.product,
      n: p.labels.length,
      positives,
      baseRate: first?.baseRate ?? (p.labels.length > 0 ? countPositives(p.labels) / p.labels.length : 0),
      ensemble: p.ensemble?.spec ?? null,
      entries,
      bestByAuc: best?.name ?? null,
      positivesBySet,
      published,
      bestBaseline: bestBaseline?.name ?? null,
      comparison,
      verdict: verdictOf(comparison, why),
      flags: positivesFlags(positivesBySet),
      deciles: publishedScores && decileTable(p.labels, publishedScores, p.customerIds),
      histogram: publishedScores && scoreHistogram(p.labels, publishedScores),
      training: p.training ?? [],
      earlierNights: p.earlierNights ?? [],
    };
  });
  return { formatVersion: 1, header: input.header, stats: (input.stats ?? {}) as Record<string, unknown>, products };
}

function ensembleNote(spec: EnsembleSummary): string {
  const weights = spec.models.map((m, i) => `${m} ${formatNumber(spec.weights[i])}`).join(', ');
  const bias = spec.bias === undefined ? '' : `, bias ${formatNumber(spec.bias)}`;
  const fallback = spec.fallbackReason ? ` (fell back: ${spec.fallbackReason})` : '';
  return `${spec.method}: ${weights}${bias}${fallback}`;
}

function formatNumber(v: number | undefined): string {
  return v === undefined ? '?' : Number(v.toPrecision(4)).toString();
}

function countPositives(labels: Int8Array): number {
  let count = 0;
  for (const y of labels) if (y === 1) count++;
  return count;
}
