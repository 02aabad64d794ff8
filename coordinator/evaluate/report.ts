/**
 * The evaluation report: for every product, each trained model, the ensemble and the baselines, scored
 * on the same customers and the same label window after training, with the run's header and stats.
 */
import { InputError } from '../../core/errors.js';
import { computeMetrics, type Metrics, type MetricsOptions } from './metrics.js';

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
  /** E.g. the recency-frequency heuristic and the logistic regression on counts. */
  baselines: { name: string; scores: Float32Array; note?: string }[];
}

export interface ReportInput {
  header: ReportHeader;
  /** Opaque run statistics from the orchestrator, shown as a small table. @default {} */
  stats?: Record<string, unknown>;
  products: ProductEvaluationInput[];
  metrics?: MetricsOptions;
}

export type EntryKind = 'model' | 'ensemble' | 'baseline';

export interface ReportEntry {
  name: string;
  kind: EntryKind;
  modelVersion: string | null;
  note: string | null;
  metrics: Metrics;
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
}

export interface EvaluationReport {
  formatVersion: 1;
  header: ReportHeader;
  stats: Record<string, unknown>;
  products: ProductReport[];
}

export function buildReport(input: ReportInput): EvaluationReport {
  const seen = new Set<string>();
  const products = input.products.map((p): ProductReport => {
    if (seen.has(p.product)) throw new InputError(`product "${p.product}" appears twice in the evaluation input`);
    seen.add(p.product);
    const score = (name: string, kind: EntryKind, scores: Float32Array, modelVersion: string | null, note: string | null): ReportEntry => {
      if (scores.length !== p.labels.length) {
        throw new InputError(
          `product "${p.product}": ${kind} "${name}" has ${scores.length} scores for ${p.labels.length} labelled customers; every score array must follow the labels' row order`,
        );
      }
      return { name, kind, modelVersion, note, metrics: computeMetrics(p.labels, scores, p.sampleWeights, input.metrics) };
    };
    const entries = [
      ...p.models.map((m) => score(m.name, 'model', m.scores, m.modelVersion, null)),
      ...(p.ensemble ? [score('ensemble', 'ensemble', p.ensemble.scores, null, ensembleNote(p.ensemble.spec))] : []),
      ...p.baselines.map((b) => score(b.name, 'baseline', b.scores, null, b.note ?? null)),
    ];
    const names = entries.map((e) => e.name);
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate) throw new InputError(`product "${p.product}": two entries are named "${duplicate}"; give each model and baseline its own name`);
    let best: ReportEntry | null = null;
    for (const e of entries) {
      if (e.metrics.auc !== null && (best === null || e.metrics.auc > best.metrics.auc!)) best = e;
    }
    const first = entries[0]?.metrics;
    return {
      product: p.product,
      n: p.labels.length,
      positives: first?.positives ?? countPositives(p.labels),
      baseRate: first?.baseRate ?? (p.labels.length > 0 ? countPositives(p.labels) / p.labels.length : 0),
      ensemble: p.ensemble?.spec ?? null,
      entries,
      bestByAuc: best?.name ?? null,
    };
  });
  return { formatVersion: 1, header: input.header, stats: input.stats ?? {}, products };
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
