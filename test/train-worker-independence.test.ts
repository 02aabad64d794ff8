/**
 * Results independent of the worker count: the trained weights (and so every prediction) depend only on
 * the data, the job and the seed. One worker, three workers, and three real worker processes of which one
 * is killed in the middle of an epoch give byte-identical weights and validation scores.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { trainModel, type TrainParticipant } from '../coordinator/train/index.js';
import { inProcessParticipants, syntheticSpec, withModelWorkers } from './helpers/train.js';
import { writeSyntheticShards } from './helpers/synthetic-shards.js';

const tmp = (name: string) => mkdtemp(path.join(os.tmpdir(), `nextbuy-indep-${name}-`));
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

test('1 worker, 3 workers, and 3 workers with one killed mid-epoch train byte-identical models', async () => {
  const data = await writeSyntheticShards({ dir: await tmp('data'), customers: 600, shards: 6, maxLength: 10, seed: 3 });
  const spec = syntheticSpec(data, { maxLength: 10, embeddingDim: 4, hiddenUnits: 8, denseUnits: 4, batchSize: 32, seed: 19 });
  const common = { spec, datasetId: 'indep', shards: data.shards, epochs: 2, patience: 5, syncEverySteps: 2, replicas: 3 };

  const one = await trainModel({ ...common, participants: inProcessParticipants(1), checkpointDir: await tmp('one') });
  const three = await trainModel({ ...common, participants: inProcessParticipants(3), checkpointDir: await tmp('three') });

  const killed = await withModelWorkers(3, async (cluster, backend) => {
    const victim = backend.processes()[1]!;
    let rounds = 0;
    // Real worker processes; the second one is SIGKILLed as its third training round of epoch 1 starts.
    const participants: TrainParticipant[] = cluster.pool.ready().map((p, i) =>
      i !== 1
        ? p
        : {
            id: p.id,
            loadShard: (d, s) => p.loadShard(d, s),
            validate: (input) => p.validate(input),
            trainRound: async (input) => {
              if (++rounds === 3) {
                victim.kill('SIGKILL');
                await victim.exited;
              }
              return p.trainRound(input);
            },
          },
    );
    const model = await trainModel({ ...common, participants, checkpointDir: await tmp('killed') });
    expect(rounds).toBeGreaterThanOrEqual(3);
    expect(model.history[0]!.participants).toBe(2);
    return model;
  });

  expect(three.history[0]!.participants).toBe(3);
  for (const other of [three, killed]) {
    expect(bytes(other.weights)).toBe(bytes(one.weights));
    expect(bytes(other.validation.scores)).toBe(bytes(one.validation.scores));
    expect(other.validation.customerIds).toEqual(one.validation.customerIds);
    expect(other.bestEpoch).toBe(one.bestEpoch);
  }
}, 120_000);
