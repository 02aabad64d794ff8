/**
 * The training stage: one binary LSTM per product and/or one attention LSTM keyed by product, each
 * trained data-parallel across the participants (or by random search when the job asks for trials).
 */
import path from 'node:path';
import type { Job } from '../../jobs/job.js';
import type { ModelSpec } from '../../proto/model-spec.js';
import type { TokenColumn } from '../../proto/shard-batch.js';
import type { TrainParticipant } from './participant.js';
import { correctForClassWeight } from './prior-correction.js';
import { randomSearch, sampleTrials, type SearchResult } from './search.js';
import { trainModel, type EpochMetrics, type TrainedModel, type TrainShard } from './trainer.js';

export type { TrainParticipant } from './participant.js';
export type { EpochMetrics, TrainedModel, TrainShard } from './trainer.js';
export { trainModel, DEFAULT_SYNC_EVERY_STEPS } from './trainer.js';
export { averageWeights } from './average.js';
export { inProcessParticipant } from './in-process.js';
export { meanProductAuc } from './auc.js';
export { correctForClassWeight } from './prior-correction.js';
export { randomSearch, sampleTrials } from './search.js';

export interface TrainingSet {
  customers: number;
  positives: Record<string, number>;
  shards: TrainShard[];
}

export interface ModelPlan {
  /** Stable name within a run: 'lstm.<product>' or 'attention'. */
  name: string;
  spec: ModelSpec;
}

/** The models a job asks for, with sizes from the vocabulary and class weights from the training labels. */
export function planModels(
  job: Job,
  products: string[],
  vocabSizes: Partial<Record<TokenColumn, number>>,
  featureNames: string[],
  set: Pick<TrainingSet, 'customers' | 'positives'>,
): ModelPlan[] {
  const m = job.model;
  const base = (architecture: ModelSpec['architecture'], product: string | null, positives: number, rows: number): ModelSpec => ({
    architecture,
    product,
    products,
    vocabSizes,
    featureNames,
    maxLength: job.sequence.maxLength,
    embeddingDim: m.embeddingDim,
    hiddenUnits: m.hiddenUnits,
    denseUnits: m.denseUnits,
    learningRate: m.learningRate,
    batchSize: m.batchSize,
    positiveWeight: m.classWeight === 'balanced' ? balancedWeight(positives, rows) : m.classWeight,
    seed: m.seed,
  });
  const plans: ModelPlan[] = [];
  if (m.architectures.includes('lstm')) {
    for (const p of products) plans.push({ name: `lstm.${p}`, spec: base('lstm', p, set.positives[p] ?? 0, set.customers) });
  }
  if (m.architectures.includes('attention')) {
    const positives = products.reduce((s, p) => s + (set.positives[p] ?? 0), 0);
    plans.push({ name: 'attention', spec: base('attention', null, positives, set.customers * products.length) });
  }
  return plans;
}

/** negatives / positives, bounded so that a product with a handful of buyers does not explode the loss. */
export function balancedWeight(positives: number, rows: number): number {
  if (positives <= 0 || positives >= rows) return 1;
  return Math.min(100, (rows - positives) / positives);
}

export interface TrainedPlan extends ModelPlan {
  model: TrainedModel;
  search: SearchResult['trials'] | null;
}

export interface TrainAllOptions {
  job: Job;
  plans: ModelPlan[];
  datasetId: string;
  shards: TrainShard[];
  participants: TrainParticipant[];
  checkpointDir: string;
  onEpoch?: (model: string, m: EpochMetrics) => void;
  /** A graceful stop (see TrainModelOptions.stop). @default none */
  stop?: AbortSignal;
}

/** Trains every planned model in turn on the whole worker pool (or searches, when job.tuning.trials > 0). */
export async function trainAll(o: TrainAllOptions): Promise<TrainedPlan[]> {
  const out: TrainedPlan[] = [];
  for (const plan of o.plans) {
    const common = {
      datasetId: o.datasetId,
      shards: o.shards,
      epochs: o.job.model.epochs,
      patience: o.job.model.patience,
      replicas: o.job.model.replicas,
      stop: o.stop,
      onEpoch: (m: EpochMetrics) => o.onEpoch?.(plan.name, m),
    };
    if (o.job.tuning.trials > 1) {
      const result = await randomSearch({
        ...common,
        trials: sampleTrials(plan.spec, o.job.tuning.trials, o.job.model.seed),
        participants: o.participants,
        checkpointDir: (t) => path.join(o.checkpointDir, plan.name, `trial-${t}`),
      });
      out.push({ ...plan, spec: result.best.spec, model: correctForClassWeight(result.best), search: result.trials });
    } else {
      const model = await trainModel({ ...common, spec: plan.spec, participants: o.participants, checkpointDir: path.join(o.checkpointDir, plan.name) });
      out.push({ ...plan, model: correctForClassWeight(model), search: null });
    }
  }
  return out;
}
