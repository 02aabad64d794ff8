/** Random search: trials sampled from the seed, spread across workers, best by validation AUC. */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { randomSearch, sampleTrials } from '../coordinator/train/index.js';
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
