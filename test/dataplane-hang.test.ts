import { afterAll, beforeAll, expect, test } from 'vitest';
import type { WorkerHandle } from '../coordinator/cluster/index.js';
import { expectEveryCustomerOnce, scoreAll, withCluster, writeSampleShards, type SampleShards } from './helpers/cluster.js';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 10, customersPerShard: 200, batchRows: 40, seed: 31 });
});
afterAll(() => sample.cleanup());

test('a frozen worker (SIGSTOP) past the heartbeat deadline has its shard re-leased; resumed, it rejoins and duplicates nothing', async () => {
  await withCluster({ workers: 3, heartbeatTimeoutMs: 1_500, env: { NEXTBUY_ECHO_DELAY_MS: '40' } }, async ({ pool, process: proc }) => {
    const frozen = proc('local-2');
    const original = pool.workers().find((w) => w.name === 'local-2')!;
    let frozenShard: string | null = null;
    let resumed = false;
    const rejoined = new Promise<WorkerHandle>((resolve) => pool.on((e) => e.type === 'joined' && e.worker.name === 'local-2' && resolve(e.worker)));

    const run = await scoreAll(pool, sample.shards, {
      targetPayloadBytes: 1,
      onEvent: (e) => {
        if (e.type === 'progress' && e.worker === 'local-2' && frozenShard === null) {
          frozenShard = e.shardId;
          frozen.kill('SIGSTOP');
        }
        // Resume it only once its shard went to another worker: its late work must not count.
        if (e.type === 'lease' && e.shardId === frozenShard && e.worker !== 'local-2' && !resumed) {
          resumed = true;
          frozen.kill('SIGCONT');
        }
      },
    });

    expect(frozenShard).not.toBeNull();
    expect(resumed).toBe(true);
    expectEveryCustomerOnce(run, sample.customers, sample.shards);
    const failure = run.events.find((e) => e.type === 'attempt-failed' && e.shardId === frozenShard && e.worker === 'local-2');
    expect(failure && 'error' in failure ? failure.error : '').toMatch(/presumed dead: no heartbeat answer within 1\.5 s/);
    expect(run.events.some((e) => e.type === 'accepted' && e.worker === 'local-2' && e.shardId === frozenShard)).toBe(false);

    // The resumed process hears no heartbeats, registers again and is admitted as a new member.
    const again = await rejoined;
    expect(again.id).not.toBe(original.id);
    expect(again.workerId).toBe(original.workerId);
    expect(original.alive).toBe(false);
    await pool.waitForWorkers(3, 30_000);
    const second = await scoreAll(pool, sample.shards);
    expectEveryCustomerOnce(second, sample.customers, sample.shards);
  });
});
