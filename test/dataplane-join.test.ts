import { afterAll, beforeAll, expect, test } from 'vitest';
import { ClusterError } from '../core/errors.js';
import { expectEveryCustomerOnce, scoreAll, withCluster, writeSampleShards, type SampleShards } from './helpers/cluster.js';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 16, customersPerShard: 120, batchRows: 40, seed: 41 });
});
afterAll(() => sample.cleanup());

test('a worker started late joins the running pool and takes pending shards', async () => {
  await withCluster({ workers: 1 }, async ({ pool, backend }) => {
    const joined = new Promise<void>((resolve) => pool.on((e) => e.type === 'joined' && resolve()));
    let spawned = false;
    const run = await scoreAll(pool, sample.shards, {
      inFlightPerWorker: 1,
      onEvent: (e) => {
        if (e.type === 'lease' && !spawned) {
          spawned = true;
          backend.spawnWorker();
        }
      },
      // The first worker's only slot stays taken until the newcomer is in: shards are still pending then.
      beforeResult: () => joined,
    });
    expectEveryCustomerOnce(run, sample.customers, sample.shards);
    expect(run.summary.byWorker['local-0']).toBeGreaterThan(0);
    // The newcomer joined while shards were pending and took some of them.
    expect(run.summary.byWorker['local-1']).toBeGreaterThan(0);
  });
});

test('with no worker in the pool, a run waits for one to join, then runs on it', async () => {
  await withCluster({ workers: 1 }, async ({ pool, backend, process: proc }) => {
    proc('local-0').kill('SIGTERM'); // drains and exits: the pool is empty
    await proc('local-0').exited;
    await new Promise<void>((resolve) => {
      const check = () => (pool.workers().length === 0 ? resolve() : setTimeout(check, 50));
      check();
    });
    const run = await scoreAll(pool, sample.shards, {
      onEvent: (e) => {
        if (e.type === 'waiting-for-workers') backend.spawnWorker();
      },
    });
    expect(run.events.some((e) => e.type === 'waiting-for-workers')).toBe(true);
    expectEveryCustomerOnce(run, sample.customers, sample.shards);
    expect(Object.keys(run.summary.byWorker)).toEqual(['local-1']);
  });
});

test('with no worker joining before the deadline, the run fails with a ClusterError saying so', async () => {
  await withCluster({ workers: 1 }, async ({ pool, process: proc }) => {
    proc('local-0').kill('SIGKILL');
    await proc('local-0').exited;
    const run = scoreAll(pool, sample.shards, { noWorkerTimeoutMs: 2_500 });
    await expect(run).rejects.toThrow(ClusterError);
    await expect(run).rejects.toThrow(/no worker was ready for 2\.5 s; 16 of 16 shards not done.*local-0.*presumed dead/);
  });
});
