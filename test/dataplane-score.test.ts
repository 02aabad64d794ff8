import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runShards } from '../coordinator/schedule/index.js';
import { echoScore } from '../worker/echo-engine.js';
import { expectEveryCustomerOnce, scoreAll, withCluster, writeSampleShards, type SampleShards } from './helpers/cluster.js';

describe('scoring shards on worker processes', () => {
  let sample: SampleShards;
  beforeAll(async () => {
    sample = await writeSampleShards({ shards: 8, customersPerShard: 230, batchRows: 60, seed: 11 });
  });
  afterAll(() => sample.cleanup());

  test('every customer comes back exactly once with its score, spread over the workers', async () => {
    await withCluster({ workers: 3 }, async ({ pool }) => {
      const run = await scoreAll(pool, sample.shards);
      expectEveryCustomerOnce(run, sample.customers, sample.shards);
      expect(run.summary.rowsSent).toBe(sample.customers.length);
      expect(run.summary.attempts).toBe(sample.shards.length);
      expect(Object.keys(run.summary.byWorker).length).toBeGreaterThan(1);
    });
  });

  test('training data ships to workers, which train and validate on it', async () => {
    await withCluster({ workers: 2 }, async ({ pool }) => {
      const holders = new Map<string, string>();
      const summary = await runShards(
        pool,
        sample.shards,
        { kind: 'training-data', datasetId: 'ds-1', onLoaded: (shardId, worker, rows) => void holders.set(shardId, `${worker.id}:${rows}`) },
        { heartbeatTimeoutMs: 1_500 },
      );
      expect(summary.rowsSent).toBe(sample.customers.length);
      expect([...holders.keys()].sort()).toEqual(sample.shards.map((s) => s.id).sort());
      for (const w of pool.workers()) {
        const mine = sample.shards.filter((s) => holders.get(s.id)?.startsWith(`${w.id}:`)).map((s) => s.id);
        if (mine.length === 0) continue;
        const weights = Float32Array.from([0.5, -1, 2]);
        const round = await w.trainRound({ datasetId: 'ds-1', specJson: '{}', weights, round: 1, localSteps: 1, seed: 3, shardIds: mine });
        expect(round.examples).toBe(mine.length * 230);
        expect([...round.weights]).toEqual([...weights]);
        const v = await w.validate({ datasetId: 'ds-1', specJson: '{}', weights, shardIds: mine });
        expect(v.customerIds.length).toBe(mine.length * 230);
        expect(v.scores[0]).toBe(echoScore(v.customerIds[0]!, 'validate', ''));
      }
    });
  });
});
