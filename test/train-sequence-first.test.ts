/**
 * Sequence first (model.sequenceFirstEpochs): a sequence model with aggregate features trains its sequence part
 * alone for the first epochs, its wide part held at zero, then both together; early stopping waits for the second
 * phase, and a run killed in the first phase resumes to the same weights.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { trainModel, type TrainParticipant } from '../coordinator/train/index.js';
import type { ModelSpec } from '../proto/model-spec.js';
import { initialWeights, splitWeights } from '../worker/model/index.js';
import { inProcessParticipants, syntheticSpec } from './helpers/train.js';
import { writeSyntheticShards, type SyntheticShards } from './helpers/synthetic-shards.js';

const WIDE = ['n_signal_7d', 'n_noise_7d'];
let data: SyntheticShards;
const tmp = (name: string) => mkdtemp(path.join(os.tmpdir(), `nextbuy-seqfirst-${name}-`));

beforeAll(async () => {
  data = await writeSyntheticShards({ dir: await tmp('data'), customers: 800, shards: 2, maxLength: 12, seed: 9, wideFeatures: WIDE });
});

const spec = () => syntheticSpec(data, { wideFeatures: WIDE, maxLength: 12 });
const train = async (name: string, o: { epochs: number; patience?: number; sequenceFirstEpochs: number; afterCheckpoint?: (epoch: number) => void }, dir?: string) =>
  trainModel({ datasetId: 'synthetic', shards: data.shards, patience: o.patience ?? 10, spec: spec(), participants: inProcessParticipants(1), checkpointDir: dir ?? (await tmp(name)), ...o });
const wideKernel = (weights: Float32Array) => Array.from(splitWeights(spec(), weights).get('wide/kernel')!.values);

describe('sequence first', () => {
  test('during the first epochs only the sequence part trains; the wide part stays at zero', async () => {
    const model = await train('phase1', { epochs: 2, sequenceFirstEpochs: 2 });
    expect(wideKernel(model.weights).every((x) => x === 0)).toBe(true);
    const lstm = (w: Float32Array) => Array.from(splitWeights(spec(), w).get('lstm/kernel')!.values);
    expect(lstm(model.weights)).not.toEqual(lstm(initialWeights(spec())));
  }, 60_000);

  test('then the wide part trains too: the rounds after the first phase are not frozen and move it', async () => {
    // What the trainer sends each round, and what comes back, whichever epoch ends up best.
    const rounds: { frozen: boolean; wide: number[] }[] = [];
    const [inner] = inProcessParticipants(1);
    const recording: TrainParticipant = {
      ...inner!,
      trainRound: async (input) => {
        const out = await inner!.trainRound(input);
        rounds.push({ frozen: (JSON.parse(input.specJson) as ModelSpec).frozenWide === true, wide: wideKernel(out.weights) });
        return out;
      },
    };
    const model = await trainModel({ datasetId: 'synthetic', shards: data.shards, epochs: 3, patience: 10, sequenceFirstEpochs: 2, spec: spec(), participants: [recording], checkpointDir: await tmp('phase2') });
    expect(model.history.map((h) => h.epoch)).toEqual([1, 2, 3]);
    expect(rounds.map((r) => r.frozen)).toEqual([true, true, false]); // one round per epoch by default
    expect(rounds[1]!.wide.every((x) => x === 0)).toBe(true);
    expect(rounds[2]!.wide.some((x) => x !== 0)).toBe(true);
  }, 60_000);

  test('early stopping counts only from the end of the first phase', async () => {
    const model = await train('patience', { epochs: 6, patience: 1, sequenceFirstEpochs: 3 });
    expect(model.history.length).toBeGreaterThanOrEqual(4);
  }, 60_000);

  test('a run killed during the first phase resumes to the same weights', async () => {
    const straight = await train('straight', { epochs: 3, sequenceFirstEpochs: 2 });
    const dir = await tmp('resumed');
    await expect(train('', { epochs: 3, sequenceFirstEpochs: 2, afterCheckpoint: (e) => { if (e === 1) throw new Error('killed'); } }, dir)).rejects.toThrow('killed');
    const resumed = await train('', { epochs: 3, sequenceFirstEpochs: 2 }, dir);
    expect(resumed.resumed).toBe(true);
    expect(Array.from(resumed.weights)).toEqual(Array.from(straight.weights));
  }, 60_000);
});
