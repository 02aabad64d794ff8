/**
 * The training stage: one logistic regression on the aggregate features per product, one binary LSTM per
 * product and/or one attention LSTM keyed by product (both also reading the aggregate features), each
 * trained data-parallel across the participants (or by random search when the job asks for trials).
 */
import path from 'node:path';
import { pathComponent } from '../../core/path-component.js';
import { DEFAULT_SEQUENCE_FIRST_EPOCHS, type Job } from '../../jobs/job.js';
import type { ModelSpec } from '../../proto/model-spec.js';
import type { TokenColumn } from '../../proto/shard-batch.js';
import { countModelResult, fitCountModel, readTrainingRows } from './count-model.js';
import type { TrainParticipant } from './participant.js';
import { log } from '../../core/log.js';
import { correctForClassWeight } from './prior-correction.js';
import { randomSearch, sampleTrials, type SearchResult } from './search.js';
import { trainModel, type EpochMetrics, type TrainedModel, type TrainShard } from './trainer.js';

export type { TrainParticipant } from './participant.js';
export type { EpochMetrics, TrainedModel, TrainShard } from './trainer.js';
export { trainModel, defaultSyncEverySteps } from './trainer.js';
export { averageWeights } from './average.js';
export { inProcessParticipant } from './in-process.js';
export { meanProductAuc } from './auc.js';
export { correctForClassWeight } from './prior-correction.js';
export { randomSearch, sampleTrials, selectionAuc } from './search.js';

export interface TrainingSet {
  customers: number;
  positives: Record<string, number>;
  shards: TrainShard[];
}

export interface ModelPlan {
  /**
   * Stable name within a run: 'logistic.<product>', 'lstm.<product>' (the product as a path component) or
   * 'attention'. It names the model's checkpoint and artifact folders, so a product name from the data goes
   * through pathComponent.
   */
  name: string;
  spec: ModelSpec;
}

/** The models a job asks for, with sizes from the vocabulary and class weights from the training labels. */
export function planModels(
  job: Job,
  products: string[],
  vocabSizes: Partial<Record<TokenColumn, number>>,
  featureNames: string[],
  wideFeatures: string[],
  set: Pick<TrainingSet, 'customers' | 'positives'>,
): ModelPlan[] {
  const m = job.model;
  const { item: _item, ...withoutItems } = vocabSizes;
  const embedded = m.itemEmbedding ? vocabSizes : withoutItems;
  const base = (architecture: ModelSpec['architecture'], product: string | null, positives: number, rows: number): ModelSpec => ({
    architecture,
    product,
    products,
    vocabSizes: embedded,
    featureNames,
    wideFeatures,
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
  if (m.architectures.includes('logistic') && wideFeatures.length > 0) {
    // Fitted unweighted on the coordinator (count-model.ts): its scores are probabilities as they are.
    for (const p of products) plans.push({ name: `logistic.${pathComponent(p)}`, spec: { ...base('logistic', p, set.positives[p] ?? 0, set.customers), positiveWeight: 1 } });
  }
  if (m.architectures.includes('lstm')) {
    for (const p of products) plans.push({ name: `lstm.${pathComponent(p)}`, spec: base('lstm', p, set.positives[p] ?? 0, set.customers) });
  }
  if (m.architectures.includes('attention')) {
    const positives = products.reduce((s, p) => s + (set.positives[p] ?? 0), 0);
    plans.push({ name: 'attention', spec: { ...base('attention', null, positives, set.customers * products.length), headReadsLastState: true } });
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

/**
 * Fits the count models first (on the coordinator, see count-model.ts), then trains every other planned model in
 * turn on the whole worker pool (or searches, when job.tuning.trials > 0): its sequence part alone for
 * model.sequenceFirstEpochs epochs, then with its wide part.
 */
export async function trainAll(o: TrainAllOptions): Promise<TrainedPlan[]> {
  const out: TrainedPlan[] = [];
  const logistic = o.plans.filter((p) => p.spec.architecture === 'logistic');
  if (logistic.length > 0) {
    const rows = await readTrainingRows(o.shards);
    for (const plan of logistic) {
      const product = plan.spec.product!;
      out.push({ ...plan, model: countModelResult(plan.spec, rows, fitCountModel(rows, product), fitCountModel(rows, product, 'all')), search: null });
    }
  }
  for (const plan of o.plans.filter((p) => p.spec.architecture !== 'logistic')) {
    const common = {
      datasetId: o.datasetId,
      shards: o.shards,
      epochs: o.job.model.epochs,
      patience: o.job.model.patience,
      replicas: o.job.model.replicas,
      sequenceFirstEpochs: o.job.model.sequenceFirstEpochs ?? DEFAULT_SEQUENCE_FIRST_EPOCHS,
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
      if (result.warning) log.warn('train.search_kept_configuration', { model: plan.name, reason: result.warning });
      out.push({ ...plan, spec: result.best.spec, model: correctForClassWeight(result.best), search: result.trials });
    } else {
      const model = await trainModel({ ...common, spec: plan.spec, participants: o.participants, checkpointDir: path.join(o.checkpointDir, plan.name) });
      out.push({ ...plan, model: correctForClassWeight(model), search: null });
    }
  }
  return out;
}
