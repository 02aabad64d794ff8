/**
 * Single-process training with early stopping: the 1-worker path and what the tests train with. The
 * data-parallel trainer (coordinator/train) drives the same SequenceModel through the worker engine.
 */
import { ModelError } from '../../core/errors.js';
import type { SequenceBatch } from '../../proto/shard-batch.js';
import { checkBatch, concatBatches } from './batch.js';
import { auc } from './metrics.js';
import { createModel, type SequenceModel } from './model.js';
import { mixSeed } from './rng.js';
import { isPerProduct, parseSpec, productIndex, type ModelSpec } from './spec.js';

export interface FitOptions {
  /** Most passes over the training rows. @default 8 */
  epochs?: number;
  /** Stop after this many epochs without a better validation AUC; the best epoch's weights are restored. @default 2 */
  patience?: number;
  /** Called after every epoch (progress logs). */
  onEpoch?: (metrics: EpochMetrics) => void;
}

export interface EpochMetrics {
  epoch: number;
  /** Mean weighted training loss over the epoch. */
  loss: number;
  examples: number;
  /** AUC over validation rows (attention: over every row × product pair); NaN when a class is missing. */
  validationAuc: number;
}

export interface FitResult {
  /** Holds the best epoch's weights; the caller disposes it. */
  model: SequenceModel;
  history: EpochMetrics[];
  bestEpoch: number;
  bestAuc: number;
  stoppedEarly: boolean;
}

/** Trains on every row of `train`, validates on every row of `validation` (see rowsOfSplit to split shards). */
export async function fit(specInput: ModelSpec, train: SequenceBatch[], validation: SequenceBatch[], options: FitOptions = {}): Promise<FitResult> {
  const spec = parseSpec(specInput);
  const epochs = options.epochs ?? 8;
  const patience = options.patience ?? 2;
  if (train.length === 0 || validation.length === 0) throw new ModelError('fit needs at least one training and one validation batch');
  const trainRows = concatBatches(train);
  const validationRows = concatBatches(validation);
  const model = createModel(spec);
  const history: EpochMetrics[] = [];
  let best: { epoch: number; auc: number; weights: Float32Array } | null = null;
  let stoppedEarly = false;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const { loss, examples } = model.trainSteps(trainRows, { epochs: 1, seed: mixSeed(spec.seed, epoch) });
      const v = labelledScores(model, validationRows);
      const metrics: EpochMetrics = { epoch, loss, examples, validationAuc: auc(v.scores, v.labels) };
      history.push(metrics);
      options.onEpoch?.(metrics);
      // An undefined AUC (one class only) cannot rank epochs: the latest weights stand.
      if (best === null || Number.isNaN(best.auc) || metrics.validationAuc > best.auc) {
        best = { epoch, auc: metrics.validationAuc, weights: model.getWeights() };
      } else if (epoch - best.epoch >= patience) {
        stoppedEarly = epoch < epochs;
        break;
      }
      await new Promise((resolve) => setImmediate(resolve)); // let I/O (heartbeats) through between epochs
    }
    model.setWeights(best!.weights);
    return { model, history, bestEpoch: best!.epoch, bestAuc: best!.auc, stoppedEarly };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * Scores with the labels they are judged against, both [rows × outputs] row-major: outputs is 1 for lstm
 * (its product), products.length for attention.
 */
export function labelledScores(model: SequenceModel, batch: SequenceBatch): { scores: Float32Array; labels: Int8Array } {
  const spec = model.spec;
  checkBatch(spec, batch, true);
  const scores = model.predict(batch);
  const ids = isPerProduct(spec) ? [productIndex(spec)] : spec.products.map((_, i) => i);
  const columns = ids.map((i) => batch.products.indexOf(spec.products[i]!));
  const P = batch.products.length;
  const labels = new Int8Array(batch.size * columns.length);
  for (let r = 0; r < batch.size; r++) {
    for (let j = 0; j < columns.length; j++) labels[r * columns.length + j] = batch.labels![r * P + columns[j]!]! > 0 ? 1 : 0;
  }
  return { scores, labels };
}
