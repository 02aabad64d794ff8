import { RecordBatch, Schema } from 'apache-arrow';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ClusterError } from '../core/errors.js';
import { customerId, sampleBatch, scoreAll, seeded, withCluster, writeSampleShards, writeShardFile, type SampleShards } from './helpers/cluster.js';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 6, customersPerShard: 120, seed: 71 });
});
afterAll(() => sample.cleanup());

test('a shard that fails on K different workers fails the run, naming the shard and each attempt’s worker and error', async () => {
  const poison = customerId(3, 17); // in shard-3
  await withCluster({ workers: 3, env: { NEXTBUY_ECHO_FAIL_CUSTOMER: poison } }, async ({ pool }) => {
    const delivered: string[] = [];
    const run = scoreAll(pool, sample.shards, {
      maxAttemptsPerShard: 3,
      beforeResult: async (shardId) => void delivered.push(shardId),
    });
    const error = await run.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ClusterError);
    const message = (error as Error).message;
    expect(message).toMatch(/^shard shard-3 \(.*shard-003\.arrows\) failed on 3 different workers; the run stops\./);
    const attempts = message.match(/attempt \d on local-\d \(127\.0\.0\.1:\d+\): Score failed: FAILED_PRECONDITION: echo engine told to fail on customer s3-c17/g) ?? [];
    expect(attempts).toHaveLength(3);
    const workers = attempts.map((a) => /attempt \d on (local-\d)/.exec(a)![1]);
    expect(new Set(workers).size).toBe(3);
    expect(delivered).not.toContain('shard-3');
  });
});

test('a shard file written by another nextbuy version is refused by every worker it reaches; the run names the shard and both versions', async () => {
  const random = seeded(72);
  const good = sampleBatch(['old-1', 'old-2', 'old-3'], random);
  const oldSchema = new Schema(good.schema.fields, new Map([...good.schema.metadata, ['nextbuy.shard_schema', '0']]));
  const file = `${sample.dir}/old-version.arrows`;
  await writeShardFile(file, [new RecordBatch(oldSchema, good.data)]);
  await withCluster({ workers: 2 }, async ({ pool }) => {
    const run = scoreAll(pool, [{ id: 'old', file }], { maxAttemptsPerShard: 2 });
    await expect(run).rejects.toThrow(ClusterError);
    await expect(run).rejects.toThrow(
      /^shard old \(.*old-version\.arrows\) failed on 2 different workers; the run stops\. attempt 1 on local-\d .*INVALID_ARGUMENT: .*schema version "0", this nextbuy reads "2".*; attempt 2 on local-\d .*INVALID_ARGUMENT/,
    );
    expect(pool.workers()).toHaveLength(2); // both survived
  });
});
