/** Small helpers for the data-parallel training tests: a spec for the synthetic shards, engines, clusters. */
import { LocalBackend, startCluster, type Cluster } from '../../coordinator/cluster/index.js';
import { inProcessParticipant, type TrainParticipant } from '../../coordinator/train/index.js';
import type { ModelSpec } from '../../proto/model-spec.js';
import { createModelEngine } from '../../worker/model-engine.js';
import { SYNTHETIC_FEATURES, SYNTHETIC_PRODUCTS, type SyntheticShards } from './synthetic-shards.js';

export function syntheticSpec(data: SyntheticShards, overrides: Partial<ModelSpec> = {}): ModelSpec {
  return {
    architecture: 'lstm',
    product: 'any',
    products: SYNTHETIC_PRODUCTS,
    vocabSizes: data.vocabSizes,
    featureNames: SYNTHETIC_FEATURES,
    wideFeatures: [],
    maxLength: 20,
    embeddingDim: 8,
    hiddenUnits: 16,
    denseUnits: 8,
    learningRate: 0.01,
    batchSize: 64,
    positiveWeight: 1,
    seed: 11,
    ...overrides,
  };
}

/** `n` participants, each with its own engine in this process (no wire: the reference for cluster runs). */
export function inProcessParticipants(n: number): TrainParticipant[] {
  return Array.from({ length: n }, (_, i) => inProcessParticipant(`p${i}`, createModelEngine({ log: () => {} })));
}

/** Real worker processes running the model engine, registered with a real coordinator on 127.0.0.1. */
export async function withModelWorkers<T>(workers: number, fn: (c: Cluster, backend: LocalBackend) => Promise<T>, heartbeatTimeoutMs = 3_000): Promise<T> {
  const backend = new LocalBackend({ engine: 'model', stopGraceMs: 3_000, onOutput: () => {} });
  const cluster = await startCluster({
    backend,
    runId: 'train-test',
    account: 'test',
    token: 'train-test-token-0123456789',
    workers,
    heartbeatTimeoutMs,
    minWorkers: workers,
    startTimeoutMs: 60_000,
  });
  try {
    return await fn(cluster, backend);
  } finally {
    await cluster.stop();
  }
}
