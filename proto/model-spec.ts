/**
 * A model's specification: everything a worker needs to build the same network with the same initial
 * weights. It travels as JSON (TrainRoundRequest.spec_json) and is stored in every model artifact.
 */
import type { TokenColumn } from './shard-batch.js';

export interface ModelSpec {
  /** logistic: the aggregate features only; lstm: the sequence and the aggregate features; attention: both, keyed by product. */
  architecture: 'logistic' | 'lstm' | 'attention';
  /** logistic, lstm: the one product this binary model predicts; attention: null (it scores every product in `products`). */
  product: string | null;
  /** All products, in the shard's label order; the attention model's query table is indexed by this. */
  products: string[];
  /** Vocabulary sizes per token column present, including the 2 reserved ids. */
  vocabSizes: Partial<Record<TokenColumn, number>>;
  featureNames: string[];
  /**
   * The aggregate ("wide") features the model reads beside the sequence, per product, in the shard's
   * nextbuy.wide_features order; [] for a model without them (artifacts from before they existed).
   */
  wideFeatures: string[];
  maxLength: number;
  embeddingDim: number;
  hiddenUnits: number;
  denseUnits: number;
  learningRate: number;
  batchSize: number;
  /** Resolved positive-class weight (multiplied with each row's sampling weight). */
  positiveWeight: number;
  seed: number;
  /**
   * The wide part (wide/kernel, and wide/bias for attention) keeps its starting weights while the rest trains.
   * Set by the trainer in the rounds of its sequence-first epochs (coordinator/train/trainer.ts), never in a
   * stored model's spec. Absent: false.
   */
  frozenWide?: boolean;
  /**
   * Attention only: the dense layer also reads the LSTM's last hidden state h, keyed by the product like the
   * pooled states (dense/kernel has 5·hiddenUnits rows: pooled, pooled ⊙ q, q, h, h ⊙ q). Pooling alone averages the states and
   * blurs what the latest events say (known truth: the pending-cart signal was learned by the per-product
   * LSTMs, which read the last state, and not by attention). Absent (artifacts before 2026-12-05): false.
   */
  headReadsLastState?: boolean;
}
