/** Random search: trials sampled from the seed, spread across workers, best by validation AUC. */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { MIN_HELD_OUT_POSITIVES } from '../coordinator/evaluate/index.js';
import { meanProductAuc, randomSearch, sampleTrials, selectionAuc, type TrainedModel } from '../coordinator/train/index.js';
import { pairCountAuc, syntheticSet } from './helpers/evaluate.js';
import { inProcessParticipants, syntheticSpec } from './helpers/train.js';
import { writeSyntheticShards } from './helpers/synthetic-shards.js';

test('trials are reproducible from the seed and trial 0 is the configuration as given', async () => {
  const data = await writeSyntheticShards({ dir: await mkdtemp(path.join(os.tmpdir(), 'nextbuy-search-')), customers: 10, shards: 1 });
  const spec = syntheticSpec(data);
  const a = sampleTrials(spec, 5, 3);
  expect(sampleTrials(spec, 5, 3)).toEqual(a);
  expect(a[0]!.spec).toEqual(spec);
  expect(new Set(a.map((t) => JSON.stringify(t.spec))).size).toBe(5);
  for (const t of a.slice(1)) {
    expect(t.spec.maxLength).toBeLessThanOrEqual(spec.maxLength);
    expect(t.spec.learningRate).toBeGreaterThanOrEqual(spec.learningRate / 10);
    expect(t.spec.learningRate).toBeLessThanOrEqual(spec.learningRate * 10);
  }
});

test('the search spreads trials over the workers and returns the trial with the best validation AUC', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-search-'));
  const data = await writeSyntheticShards({ dir: path.join(dir, 'data'), customers: 1_200, shards: 3, seed: 9 });
  const result = await randomSearch({
    datasetId: 'search',
    shards: data.shards,
    epochs: 3,
    patience: 1,
    trials: sampleTrials(syntheticSpec(data), 4, 1),
    participants: inProcessParticipants(2),
    checkpointDir: (t) => path.join(dir, `trial-${t}`),
  });
  expect(result.trials.map((t) => t.index)).toEqual([0, 1, 2, 3]);
  expect(new Set(result.trials.map((t) => t.worker))).toEqual(new Set(['p0', 'p1']));
  const best = Math.max(...result.trials.map((t) => t.validationAuc));
  expect(result.best.bestAuc).toBe(best);
  expect(result.best.spec).toEqual(result.trials.find((t) => t.validationAuc === best)!.spec);
}, 120_000);

test('with too few validation buyers the search keeps the configuration as given, saying why, instead of picking a trial on noise', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-search-'));
  // Product 'rare' is 5 % noise: about 3 buyers among the 60 validation customers.
  const data = await writeSyntheticShards({ dir: path.join(dir, 'data'), customers: 240, shards: 2, seed: 4, products: ['rare'] });
  const trials = sampleTrials(syntheticSpec(data, { product: 'rare', products: ['rare'] }), 4, 2);
  const result = await randomSearch({
    datasetId: 'search-rare',
    shards: data.shards,
    epochs: 1,
    patience: 1,
    trials,
    participants: inProcessParticipants(2),
    checkpointDir: (t) => path.join(dir, `trial-${t}`),
  });
  const buyers = result.best.validation.labels.reduce((a, b) => a + b, 0);
  expect(buyers).toBeLessThan(MIN_HELD_OUT_POSITIVES);
  // The case the guard is for: some trial's noisy AUC beats the configuration as given.
  expect(Math.max(...result.trials.slice(1).map((t) => t.validationAuc))).toBeGreaterThan(result.trials[0]!.validationAuc);
  expect(result.best.spec).toEqual(trials[0]!.spec);
  expect(result.warning).toBe(
    `no product has ${MIN_HELD_OUT_POSITIVES} validation buyers: kept the configuration as given (trial 0) rather than pick a trial on noise`,
  );
}, 120_000);

test('a product-keyed trial is judged on the products with enough validation buyers only', () => {
  const s = syntheticSet(600, 21);
  const rows = 600;
  // Interleaved rows × products: 'a' with its real labels, 'b' with 2 buyers and scores that rank them first.
  const labels = new Int8Array(rows * 2);
  const scores = new Float32Array(rows * 2);
  for (let i = 0; i < rows; i++) {
    labels[2 * i] = s.labels[i]!;
    scores[2 * i] = s.informative[i]!;
    labels[2 * i + 1] = i < 2 ? 1 : 0;
    scores[2 * i + 1] = i < 2 ? 0.9 : 0.1;
  }
  const model = (architecture: 'attention' | 'lstm') =>
    ({ spec: { architecture, products: ['a', 'b'] }, bestAuc: meanProductAuc(labels, scores, 2), validation: { customerIds: [], labels, scores } }) as unknown as TrainedModel;
  expect(selectionAuc(model('attention'))).toBeCloseTo(pairCountAuc(s.labels, s.informative), 12);
  expect(model('attention').bestAuc).toBeGreaterThan(selectionAuc(model('attention')) + 0.1); // 'b' inflates the plain mean
});
