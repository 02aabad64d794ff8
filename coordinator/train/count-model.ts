/**
 * The count model: one L2-regularised logistic regression per product on the aggregate features, fitted on the
 * coordinator by IRLS (exact and deterministic, seconds where SGD would need many epochs to converge), stored and
 * scored like every other model (architecture `logistic`: its ONNX graph is features · w + b → sigmoid).
 *
 * Memory: the training rows' aggregate features are held once, rows × products × features × 4 bytes.
 */
import type { ModelSpec } from '../../proto/model-spec.js';
import { toShardRows, type ShardRows } from '../../proto/shard-batch.js';
import { fitLogisticRegression } from '../evaluate/logistic.js';
import { readShard } from '../preprocess/shards.js';
import { auc, splitWeights, weightCount } from '../../worker/model/index.js';
import type { TrainedModel, TrainShard } from './trainer.js';

/** L2 penalty of the count model (on standardised features, summed log loss). */
export const COUNT_MODEL_L2 = 1;

/** A product's fitted coefficients on the transformed aggregate features (the shard's `wide` values). */
export interface CountCoefficients {
  weights: Float32Array;
  bias: number;
}

interface TrainingRows {
  n: number;
  products: string[];
  width: number;
  customerIds: string[];
  /** [n × products × width] */
  wide: Float32Array;
  /** [n × products] */
  labels: Int8Array;
  weight: Float32Array;
  split: Int8Array;
}

/** The training shards' aggregate features, labels, weights and splits (their event lists are never read). */
export async function readTrainingRows(shards: readonly TrainShard[]): Promise<TrainingRows> {
  const parts: ShardRows[] = [];
  for (const s of shards) for await (const batch of readShard(s.file)) parts.push(toShardRows(batch));
  const n = parts.reduce((sum, b) => sum + b.size, 0);
  const first = parts[0];
  const products = first?.products ?? [];
  const width = first?.wideFeatures.length ?? 0;
  const rows: TrainingRows = {
    n,
    products,
    width,
    customerIds: [],
    wide: new Float32Array(n * products.length * width),
    labels: new Int8Array(n * products.length),
    weight: new Float32Array(n),
    split: new Int8Array(n),
  };
  let at = 0;
  for (const b of parts) {
    rows.customerIds.push(...b.customerIds);
    rows.wide.set(b.wide, at * products.length * width);
    if (b.labels) rows.labels.set(b.labels, at * products.length);
    rows.weight.set(b.weight, at);
    rows.split.set(b.split, at);
    at += b.size;
  }
  return rows;
}

/**
 * Fits product p's coefficients on the training rows (split 0), or on every row once the validation scores are
 * taken (a convex fit with nothing to stop early: more rows only help the published model).
 */
export function fitCountModel(rows: TrainingRows, product: string, on: 'training' | 'all' = 'training'): CountCoefficients {
  const p = rows.products.indexOf(product);
  const { width: W, products } = rows;
  const train: number[] = [];
  for (let i = 0; i < rows.n; i++) if (on === 'all' || rows.split[i] === 0) train.push(i);
  const columns = Array.from({ length: W }, (_, j) => Float64Array.from(train, (i) => rows.wide[(i * products.length + p) * W + j]!));
  const labels = Int8Array.from(train, (i) => rows.labels[i * products.length + p]!);
  const sampleWeights = Float64Array.from(train, (i) => rows.weight[i]!);
  const model = fitLogisticRegression(columns, labels, { l2: COUNT_MODEL_L2, standardise: true, sampleWeights });
  return { weights: Float32Array.from(model.weights), bias: model.bias };
}

/** The `logistic` architecture's weight vector (wide/kernel, output/bias) from fitted coefficients. */
export function countModelWeights(spec: ModelSpec, c: CountCoefficients): Float32Array {
  const flat = new Float32Array(weightCount(spec));
  const parts = splitWeights(spec, flat);
  parts.get('wide/kernel')!.values.set(c.weights);
  parts.get('output/bias')!.values[0] = c.bias;
  return flat;
}

/**
 * The count model as a trained model of the night: validation scores and AUC on split 1 from the coefficients
 * fitted on split 0 (`c`), and the weights refitted on every row (`refit`).
 */
export function countModelResult(spec: ModelSpec, rows: TrainingRows, c: CountCoefficients, refit: CountCoefficients): TrainedModel {
  const p = rows.products.indexOf(spec.product!);
  const W = rows.width;
  const customerIds: string[] = [];
  const scores: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < rows.n; i++) {
    if (rows.split[i] !== 1) continue;
    let z = c.bias;
    const base = (i * rows.products.length + p) * W;
    for (let j = 0; j < W; j++) z += c.weights[j]! * rows.wide[base + j]!;
    customerIds.push(rows.customerIds[i]!);
    scores.push(1 / (1 + Math.exp(-z)));
    labels.push(rows.labels[i * rows.products.length + p]!);
  }
  const validation = { customerIds, scores: Float32Array.from(scores), labels: Int8Array.from(labels) };
  const validationAuc = auc(validation.scores, validation.labels);
  return {
    spec,
    weights: countModelWeights(spec, refit),
    bestEpoch: 1,
    bestAuc: validationAuc,
    history: [{ epoch: 1, trainLoss: Number.NaN, validationAuc, examples: rows.n - customerIds.length, rounds: 0, participants: 0, bytesMoved: 0, ms: 0 }],
    validation,
    resumed: false,
  };
}
