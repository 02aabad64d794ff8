import { RecordBatch, Schema } from 'apache-arrow';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runShards } from '../coordinator/schedule/index.js';
import { ProtocolError, SecurityError } from '../core/errors.js';
import { PROTOCOL_VERSION, grpc, type HealthReply } from '../proto/index.js';
import { registerWorker } from '../proto/register.js';
import { encodeBatches } from '../proto/shard-batch.js';
import {
  RUN_ID,
  TEST_TOKEN,
  expectEveryCustomerOnce,
  rawScore,
  rawUnary,
  sampleBatch,
  scoreAll,
  seeded,
  withCluster,
  writeSampleShards,
  writeShardFile,
  type SampleShards,
} from './helpers/cluster.js';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 4, customersPerShard: 150, seed: 61 });
});
afterAll(() => sample.cleanup());

const header = { shard_id: 'shard-x', attempt: 1, model_versions: ['m1'], products: [] };
/** A peer of the next version. */
const NEXT = PROTOCOL_VERSION + 1;

test('a malformed Arrow payload fails its call with INVALID_ARGUMENT; the worker survives and scores correctly', async () => {
  await withCluster({ workers: 1 }, async ({ pool, process: proc }) => {
    const [worker] = pool.workers();
    const random = seeded(5);
    const garbage = Uint8Array.from({ length: 4096 }, () => Math.floor(random() * 256));
    const bad = await rawScore(worker!.address, [{ header }, { arrow: garbage }]);
    expect(bad.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.error?.details).toMatch(/^malformed Arrow IPC payload \(4096 bytes\)/);

    // Valid Arrow, but a shard schema of another version: refused with both versions named.
    const good = sampleBatch(['a', 'b'], seeded(6));
    const oldSchema = new Schema(good.schema.fields, new Map([...good.schema.metadata, ['nextbuy.shard_schema', '0']]));
    const wrongVersion = await rawScore(worker!.address, [{ header }, { arrow: encodeBatches([new RecordBatch(oldSchema, good.data)]) }]);
    expect(wrongVersion.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(wrongVersion.error?.details).toMatch(/schema version "0", this nextbuy reads "2"/);

    const noHeader = await rawScore(worker!.address, [{ arrow: encodeBatches([good]) }]);
    expect(noHeader.error?.details).toMatch(/must start with a header/);

    expect(proc('local-0').child.exitCode).toBeNull();
    const health = await rawUnary<HealthReply>(worker!.address, 'Health', {});
    expect(health.state).toBe('SERVING');
    const run = await scoreAll(pool, sample.shards);
    expectEveryCustomerOnce(run, sample.customers, sample.shards);
  });
});

test('a peer of another protocol version is refused, at Register and at the worker, naming both versions', async () => {
  await withCluster({ workers: 1 }, async ({ cluster, pool }) => {
    const [worker] = pool.workers();
    const register = registerWorker({
      coordinatorAddress: cluster.coordinatorAddress,
      address: '127.0.0.1:1',
      runId: RUN_ID,
      token: TEST_TOKEN,
      workerName: 'old-worker',
      protocolVersion: NEXT,
    });
    await expect(register).rejects.toThrow(ProtocolError);
    await expect(register).rejects.toThrow(
      new RegExp(`the worker speaks nextbuy protocol ${NEXT}, the coordinator speaks ${PROTOCOL_VERSION}; run the same nextbuy version on the coordinator and the workers`),
    );
    expect(pool.recentRejections().join('\n')).toMatch(new RegExp(`old-worker \\(127\\.0\\.0\\.1:1\\): .*protocol ${NEXT}`));

    const hello = rawUnary(worker!.address, 'Hello', { protocol_version: NEXT, run_id: RUN_ID, account: 'test', nonce: Buffer.alloc(32), address: worker!.address });
    await expect(hello).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringMatching(new RegExp(`the coordinator speaks nextbuy protocol ${NEXT}, the worker speaks ${PROTOCOL_VERSION}`)),
    });
    const score = await rawScore(worker!.address, [{ header }], { protocolVersion: NEXT });
    expect(score.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(score.error?.details).toMatch(new RegExp(`the caller speaks nextbuy protocol ${NEXT}, the worker speaks ${PROTOCOL_VERSION}`));

    // The refused peers changed nothing: the pool is the one worker, and it scores everything once.
    expect(pool.workers()).toHaveLength(1);
    expectEveryCustomerOnce(await scoreAll(pool, sample.shards), sample.customers, sample.shards);
  });
});

test('without the run token: Register is refused and the worker serves nothing', async () => {
  await withCluster({ workers: 1 }, async ({ cluster, pool }) => {
    const [worker] = pool.workers();
    const register = registerWorker({ coordinatorAddress: cluster.coordinatorAddress, address: '127.0.0.1:1', runId: RUN_ID, token: 'wrong', workerName: 'intruder' });
    await expect(register).rejects.toThrow(SecurityError);
    await expect(register).rejects.toThrow(/registration refused: the worker does not hold this run's token/);
    const score = await rawScore(worker!.address, [{ header }], { token: 'wrong' });
    expect(score.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(pool.workers()).toHaveLength(1);
  });
});

test('a message over the size limit is rejected by the limit; the worker survives; a shard batch too big for it fails the run with what to do', async () => {
  const limit = 1024 * 1024;
  await withCluster({ workers: 1, env: { NEXTBUY_MAX_MESSAGE_BYTES: String(limit) } }, async ({ pool, process: proc }) => {
    const [worker] = pool.workers();
    expect(worker!.maxMessageBytes).toBe(limit);
    const big = await rawScore(worker!.address, [{ header }, { arrow: new Uint8Array(2 * limit) }]);
    expect(big.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(proc('local-0').child.exitCode).toBeNull();
    expect((await rawUnary<HealthReply>(worker!.address, 'Health', {})).state).toBe('SERVING');

    // 6,000 customers × up to 20 events × 5 lists in one record batch: well over 1 MiB.
    const ids = Array.from({ length: 6_000 }, (_, i) => `big-${i}`);
    const file = `${sample.dir}/big.arrows`;
    await writeShardFile(file, [sampleBatch(ids, seeded(9))]);
    const run = runShards(pool, [{ id: 'big', file }], { kind: 'score', modelVersions: ['m1'], products: [], onResult: () => {} }, { heartbeatTimeoutMs: 1_500 });
    await expect(run).rejects.toThrow(ProtocolError);
    await expect(run).rejects.toThrow(/big\.arrows: record batch 0 takes \d+ bytes, more than the \d+ a worker accepts in one message: lower shards\.batchRows/);
  });
});
