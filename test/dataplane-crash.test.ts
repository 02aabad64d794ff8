import { afterAll, beforeAll, expect, test } from 'vitest';
import { expectEveryCustomerOnce, scoreAll, withCluster, writeSampleShards, type SampleShards } from './helpers/cluster.js';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 12, customersPerShard: 200, batchRows: 40, seed: 21 });
});
afterAll(() => sample.cleanup());

test('a worker killed (SIGKILL) in the middle of a shard loses and duplicates nothing', async () => {
  await withCluster({ workers: 3, env: { NEXTBUY_ECHO_DELAY_MS: '40' } }, async ({ pool, process: proc }) => {
    const victim = proc('local-1');
    let killedShard: string | null = null;
    const left = new Promise<string>((resolve) => pool.on((e) => e.type === 'left' && e.worker.name === 'local-1' && resolve(e.cause)));

    const run = await scoreAll(pool, sample.shards, {
      targetPayloadBytes: 1, // one record batch per message: a shard is a real stream of batches
      onEvent: (e) => {
        // Part of the shard is scored (one reply back), the rest is not: kill there.
        if (e.type === 'progress' && e.worker === 'local-1' && killedShard === null) {
          killedShard = e.shardId;
          victim.kill('SIGKILL');
        }
      },
    });

    expect(killedShard).not.toBeNull();
    expect((await victim.exited).signal).toBe('SIGKILL');
    expectEveryCustomerOnce(run, sample.customers, sample.shards);
    const failed = run.events.filter((e) => e.type === 'attempt-failed' && e.shardId === killedShard);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed[0]).toMatchObject({ worker: 'local-1', counted: true });
    const accepted = run.events.find((e) => e.type === 'accepted' && e.shardId === killedShard);
    expect(accepted).toMatchObject({ attempt: expect.any(Number) });
    expect(accepted && 'worker' in accepted ? accepted.worker : '').not.toBe('local-1');
    // The heartbeats then find the process gone and take it out of the pool.
    expect(await left).toBe('dead');
    expect(pool.workers().map((w) => w.name).sort()).toEqual(['local-0', 'local-2']);
  });
});
