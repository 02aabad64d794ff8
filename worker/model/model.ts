/**
 * A trainable sequence model: the network, its Adam optimizer and the weight-vector view that travels
 * between workers. Training and prediction run on whichever tfjs backend is active (see runtime.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { ModelError } from '../../core/errors.js';
import type { SequenceBatch } from '../../proto/shard-batch.js';
import { checkBatch, disposeInputs, inputTensors, selectRows, targets } from './batch.js';
import { explainRow, type ExplainOptions, type Explanation } from './explain.js';
import { Network } from './network.js';
import { mixSeed, Rng } from './rng.js';
import { isPerProduct, parseSpec, productIdsOf, productIndex, weightCount, weightLayout, type ModelSpec } from './spec.js';
import { initialWeights, splitWeights } from './weights.js';

export interface TrainStepsOptions {
  /** Optimizer steps of spec.batchSize rows each (the last of a pass smaller); rows in a seeded order, reshuffled per pass. */
  steps?: number;
  /** Whole passes over the batch instead of a step count (the last step of a pass may be smaller). */
  epochs?: number;
  /** Seeds the row order: pass k over the rows uses permutation mixSeed(seed, k). */
  seed: number;
  /**
   * Steps already taken in that seeded order, so calls with the same seed continue one another: a pass is
   * ceil(rows / batchSize) steps (the last one smaller), and step k is batch k mod that of pass k div that.
   * A data-parallel round r of s steps starts at step r·s, so the rounds of an epoch see different rows.
   * @default 0
   */
  startStep?: number;
}

export interface TrainStepsResult {
  /** Mean weighted binary cross-entropy over the steps (weighted by rows per step). */
  loss: number;
  /** Rows seen (a row seen twice counts twice): the weight of these updates in averaging. */
  examples: number;
}

export interface PredictOptions {
  /** Rows per forward pass (bounds memory). @default 1024 */
  chunkRows?: number;
}

export interface SequenceModel {
  readonly spec: ModelSpec;
  /** All weights, flat, in spec.ts's weight-layout order. */
  getWeights(): Float32Array;
  setWeights(weights: Float32Array): void;
  /** Runs optimizer steps (Adam, state kept across calls) over the batch's rows; every row must be labelled. */
  trainSteps(batch: SequenceBatch, options: TrainStepsOptions): TrainStepsResult;
  /** Scores: lstm [rows]; attention [rows × products.length] row-major (products default to spec.products). */
  predict(batch: SequenceBatch, products?: string[], options?: PredictOptions): Float32Array;
  /** Why one row scored as it did: top events by attention (attention only) and by gradient × input. */
  explain(batch: SequenceBatch, row: number, options?: ExplainOptions): Explanation;
  /** Forgets the optimizer's moments (the next step starts Adam afresh). */
  resetOptimizer(): void;
  dispose(): void;
}

/** Builds a model with the spec's seeded initial weights. */
export function createModel(specInput: ModelSpec | string): SequenceModel {
  return new TfjsSequenceModel(parseSpec(specInput));
}

/** A trained model back from its spec and weights (e.g. a loaded artifact), to score or explain with tfjs. */
export function modelFromWeights(specInput: ModelSpec | string, weights: Float32Array): SequenceModel {
  const model = createModel(specInput);
  try {
    model.setWeights(weights);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

class TfjsSequenceModel implements SequenceModel {
  readonly spec: ModelSpec;
  private readonly net: Network;
  /** What the optimizer updates: every variable, or all but the wide part's when spec.frozenWide. */
  private readonly trainable: tf.Variable[];
  private optimizer: tf.AdamOptimizer | null = null;
  private disposed = false;

  constructor(spec: ModelSpec) {
    this.spec = spec;
    this.net = new Network(spec, initialWeights(spec));
    const frozen = new Set(spec.frozenWide ? ['wide/kernel', 'wide/bias'] : []);
    this.trainable = this.net.variables.filter((_, i) => !frozen.has(weightLayout(spec)[i]!.name));
  }

  getWeights(): Float32Array {
    this.alive();
    const out = new Float32Array(weightCount(this.spec));
    weightLayout(this.spec).forEach((w, i) => out.set(this.net.variables[i]!.dataSync() as Float32Array, w.offset));
    return out;
  }

  setWeights(weights: Float32Array): void {
    this.alive();
    const parts = splitWeights(this.spec, weights);
    weightLayout(this.spec).forEach((w, i) => {
      tf.tidy(() => this.net.variables[i]!.assign(tf.tensor(parts.get(w.name)!.values, w.shape, 'float32')));
    });
  }

  resetOptimizer(): void {
    this.optimizer?.dispose();
    this.optimizer = null;
  }

  trainSteps(batch: SequenceBatch, options: TrainStepsOptions): TrainStepsResult {
    this.alive();
    checkBatch(this.spec, batch, true);
    if (batch.size === 0) return { loss: 0, examples: 0 };
    const size = this.spec.batchSize;
    const perEpoch = Math.ceil(batch.size / size);
    const steps = options.steps ?? (options.epochs ?? 1) * perEpoch;
    if (!Number.isInteger(steps) || steps < 0) throw new ModelError(`trainSteps: steps must be a whole number ≥ 0, got ${steps}`);
    this.optimizer ??= tf.train.adam(this.spec.learningRate, 0.9, 0.999, 1e-7);
    const productIds = isPerProduct(this.spec) ? [productIndex(this.spec)] : this.spec.products.map((_, i) => i);
    const startStep = options.startStep ?? 0;
    if (!Number.isInteger(startStep) || startStep < 0) throw new ModelError(`trainSteps: startStep must be a whole number ≥ 0, got ${startStep}`);
    let pass = -1;
    let order: Int32Array = new Int32Array(0);
    let lossSum = 0;
    let examples = 0;
    for (let s = startStep; s < startStep + steps; s++) {
      if (Math.floor(s / perEpoch) !== pass) {
        pass = Math.floor(s / perEpoch);
        order = new Rng(mixSeed(options.seed, pass)).permutation(batch.size);
      }
      const from = (s % perEpoch) * size;
      const rows = order.subarray(from, Math.min(from + size, batch.size));
      const mini = selectRows(batch, rows);
      lossSum += this.step(mini, productIds) * rows.length;
      examples += rows.length;
    }
    return { loss: examples > 0 ? lossSum / examples : 0, examples };
  }

  /** One Adam step on one minibatch; returns its loss. */
  private step(mini: SequenceBatch, productIds: number[]): number {
    const inputs = inputTensors(this.spec, mini);
    const { labels, weights } = targets(this.spec, mini, productIds);
    try {
      return tf.tidy(() => {
        const y = tf.tensor2d(labels, [mini.size, productIds.length]);
        const w = tf.tensor2d(weights, [mini.size, productIds.length]);
        const ids = this.spec.architecture === 'attention' ? Int32Array.from(productIds) : undefined;
        const loss = this.optimizer!.minimize(
          () => weightedLogLoss(this.net.forward(inputs, ids).logits, y, w),
          true,
          this.trainable,
        ) as tf.Scalar;
        return loss.dataSync()[0]!;
      });
    } finally {
      disposeInputs(inputs);
    }
  }

  predict(batch: SequenceBatch, products?: string[], options: PredictOptions = {}): Float32Array {
    this.alive();
    checkBatch(this.spec, batch);
    const ids = productIdsOf(this.spec, products);
    const chunk = options.chunkRows ?? 1024;
    const out = new Float32Array(batch.size * ids.length);
    for (let from = 0; from < batch.size; from += chunk) {
      const to = Math.min(from + chunk, batch.size);
      const inputs = inputTensors(this.spec, batch, from, to);
      try {
        const scores = tf.tidy(() => tf.sigmoid(this.net.forward(inputs, this.spec.architecture === 'attention' ? ids : undefined).logits));
        out.set(scores.dataSync() as Float32Array, from * ids.length);
        scores.dispose();
      } finally {
        disposeInputs(inputs);
      }
    }
    return out;
  }

  explain(batch: SequenceBatch, row: number, options: ExplainOptions = {}): Explanation {
    this.alive();
    checkBatch(this.spec, batch);
    if (!Number.isInteger(row) || row < 0 || row >= batch.size) throw new ModelError(`explain: row ${row} is outside the batch (0..${batch.size - 1})`);
    return explainRow(this.net, batch, row, options);
  }


  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.optimizer?.dispose();
    this.net.dispose();
  }

  private alive(): void {
    if (this.disposed) throw new ModelError('the model was disposed');
  }
}

/** Σ w·BCE(sigmoid(z), y) / entries, computed from logits (stable for large |z|). */
export function weightedLogLoss(logits: tf.Tensor2D, labels: tf.Tensor2D, weights: tf.Tensor2D): tf.Scalar {
  const perEntry = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
  return tf.div(tf.sum(tf.mul(perEntry, weights)), logits.size) as tf.Scalar;
}
