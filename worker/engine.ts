/**
 * What a worker does with the data it receives: the seam between the gRPC server (worker/server.ts),
 * which knows the wire, and the models (worker/model/), which know tensors.
 */
import type { SequenceBatch } from '../proto/shard-batch.js';

/** Scores for one shard batch: row-major [batch rows × columns], one column per (model version, product) pair. */
export interface ScoredBatch {
  /** One entry per output column. */
  columns: { modelVersion: string; product: string }[];
  /** [batch.size × columns.length], rows in the batch's order. */
  scores: Float32Array;
}

export interface TrainRoundInput {
  datasetId: string;
  specJson: string;
  weights: Float32Array;
  round: number;
  localSteps: number;
  seed: number;
  shardIds: string[];
}

export interface TrainRoundOutput {
  weights: Float32Array;
  examples: number;
  loss: number;
}

export interface ValidateInput {
  datasetId: string;
  specJson: string;
  weights: Float32Array;
  shardIds: string[];
}

export interface ValidateOutput {
  customerIds: string[];
  scores: Float32Array;
  labels: Int8Array;
}

export interface WorkerEngine {
  /** Runtimes this worker can use, best first (reported at Hello). */
  runtimes(): string[];
  /** Settles once runtimes() names what this worker will use (a runtime chosen at start); never rejects. @default none: runtimes() is final at once */
  ready?(): Promise<void>;
  /** Loads a model artifact sent as files; returns the runtime it will score with and why. */
  loadModel(modelVersion: string, files: Map<string, Uint8Array>): Promise<{ runtime: string; note: string }>;
  /** Scores every row of the batch with each model (and, for product-keyed models, each product). */
  score(batch: SequenceBatch, modelVersions: string[], products: string[]): Promise<ScoredBatch>;
  /** Keeps a shard's training rows for later rounds (replacing an earlier copy of the same shard). */
  addTrainingData(datasetId: string, shardId: string, batches: SequenceBatch[]): Promise<number>;
  trainRound(input: TrainRoundInput): Promise<TrainRoundOutput>;
  validate(input: ValidateInput): Promise<ValidateOutput>;
}
