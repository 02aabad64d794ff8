/**
 * Synchronous data-parallel training (local SGD with weight averaging): 1 and 3 workers reach the same
 * quality on a seeded synthetic set with a real signal, a killed run resumes to the same weights, and a
 * worker process killed mid-training costs a retried round, not the model.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { computeMetrics } from '../coordinator/evaluate/index.js';
import { averageWeights, trainModel } from '../coordinator/train/index.js';
import { syntheticSpec, inProcessParticipants, withModelWorkers } from './helpers/train.js';
import { writeSyntheticShards, type SyntheticShards } from './helpers/synthetic-shards.js';

let data: SyntheticShards;
const tmp = (name: string) => mkdtemp(path.join(os.tmpdir(), `nextbuy-train-${name}-`));

beforeAll(async () => {
  data = await writeSyntheticShards({ dir: await tmp('data'), customers: 3_000, shards: 6, maxLength: 20, seed: 5 });
});

const base = () => ({ datasetId: 'synthetic', shards: data.shards, epochs: 5, patience: 2, syncEverySteps: 4 });

describe('data-parallel training', () => {
  test('averaging weights is weighted by the examples each worker saw', () => {
    const w = averageWeights([
      { weights: Float32Array.from([1, 10]), examples: 3 },
      { weights: Float32Array.from([5, 20]), examples: 1 },
      { weights: Float32Array.from([100, 100]), examples: 0 },
    ]);
    expect(Array.from(w)).toEqual([2, 12.5]);
  });

  test('1 worker and 3 workers reach validation AUC ≥ 0.7 and within 0.01 of each other', async () => {
    // Three workers take a third of the synchronised steps per epoch, so both train to their plateau.
    const spec = syntheticSpec(data);
    const untilPlateau = { epochs: 12, patience: 3 };
    const one = await trainModel({ ...base(), ...untilPlateau, spec, participants: inProcessParticipants(1), checkpointDir: await tmp('one') });
    const three = await trainModel({ ...base(), ...untilPlateau, spec, participants: inProcessParticipants(3), checkpointDir: await tmp('three') });
    expect(one.bestAuc).toBeGreaterThanOrEqual(0.7);
    expect(three.bestAuc).toBeGreaterThanOrEqual(0.7);
    expect(Math.abs(one.bestAuc - three.bestAuc)).toBeLessThanOrEqual(0.01);
    // Both validated every held-out customer once.
    expect(new Set(three.validation.customerIds).size).toBe(one.validation.customerIds.length);
    // The reported AUC is the AUC of the returned validation scores, by the evaluation stage's own computation.
    expect(computeMetrics(three.validation.labels, three.validation.scores).auc).toBeCloseTo(three.bestAuc, 10);
    // Weight traffic was counted for every epoch.
    expect(three.history.every((h) => h.bytesMoved > 0 && h.participants === 3)).toBe(true);
  }, 240_000);

  test('a run killed after an epoch checkpoint resumes to the same final weights', async () => {
    const spec = syntheticSpec(data, { seed: 23 });
    const straight = await trainModel({ ...base(), epochs: 4, patience: 10, spec, participants: inProcessParticipants(2), checkpointDir: await tmp('straight') });

    const dir = await tmp('resumed');
    const killAfter = 2;
    await expect(
      trainModel({
        ...base(), epochs: 4, patience: 10, spec, participants: inProcessParticipants(2), checkpointDir: dir,
        afterCheckpoint: (epoch) => {
          if (epoch === killAfter) throw new Error('coordinator killed');
        },
      }),
    ).rejects.toThrow('coordinator killed');
    // Fresh participants, as after a restart: nothing survives but the checkpoint.
    const resumed = await trainModel({ ...base(), epochs: 4, patience: 10, spec, participants: inProcessParticipants(2), checkpointDir: dir });
    expect(resumed.resumed).toBe(true);
    expect(resumed.history.map((h) => h.epoch)).toEqual([1, 2, 3, 4]);
    expect(Array.from(resumed.weights)).toEqual(Array.from(straight.weights));
    expect(resumed.bestEpoch).toBe(straight.bestEpoch);
  }, 240_000);

  test('a worker process killed mid-training: its shards move, the round is retried, quality holds', async () => {
    await withModelWorkers(3, async (cluster, backend) => {
      const participants = cluster.pool.ready();
      expect(participants).toHaveLength(3);
      let killed = false;
      const model = await trainModel({
        ...base(),
        // Three replicas, one per worker, so that the killed worker holds one.
        replicas: 3,
        spec: syntheticSpec(data),
        participants,
        checkpointDir: await tmp('kill'),
        onEpoch: (m) => {
          if (m.epoch === 1 && !killed) {
            killed = true;
            backend.processes()[1]!.kill('SIGKILL');
          }
        },
      });
      expect(killed).toBe(true);
      expect(model.history[0]!.participants).toBe(3);
      expect(model.history.at(-1)!.participants).toBe(2);
      expect(model.bestAuc).toBeGreaterThanOrEqual(0.7);
      // Every validation customer still validated exactly once after the move.
      expect(new Set(model.validation.customerIds).size).toBe(model.validation.customerIds.length);
    });
  }, 240_000);
});
