import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ScheduleEvent } from '../coordinator/schedule/index.js';
import { expectEveryCustomerOnce, scoreAll, withCluster, writeSampleShards, type SampleShards } from './helpers/cluster.js';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 12, customersPerShard: 160, batchRows: 40, seed: 51 });
});
afterAll(() => sample.cleanup());

/** Shards leased to `worker` and not yet accepted, failed or discarded, as of the events so far. */
function inFlightOn(events: ScheduleEvent[], worker: string): string[] {
  const open = new Map<string, number>();
  for (const e of events) {
    if (e.type === 'lease' && e.worker === worker) open.set(`${e.shardId}#${e.attempt}`, 1);
    if ((e.type === 'accepted' || e.type === 'attempt-failed' || e.type === 'discarded') && e.worker === worker) open.delete(`${e.shardId}#${e.attempt}`);
  }
  return [...open.keys()].map((k) => k.split('#')[0]!);
}

test('SIGTERM: the worker finishes the shards it holds, takes no new ones, and exits 0', async () => {
  await withCluster({ workers: 3, env: { NEXTBUY_ECHO_DELAY_MS: '40' } }, async ({ pool, process: proc }) => {
    const worker = proc('local-1');
    const events: ScheduleEvent[] = [];
    let held: string[] | null = null;
    let before: string[] = [];
    const run = await scoreAll(pool, sample.shards, {
      targetPayloadBytes: 1,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'progress' && e.worker === 'local-1' && held === null) {
          held = inFlightOn(events, 'local-1');
          before = events.filter((x) => x.type === 'accepted' && x.worker === 'local-1').map((x) => (x as { shardId: string }).shardId);
          worker.kill('SIGTERM');
        }
      },
    });
    expect((await worker.exited).code).toBe(0);
    expectEveryCustomerOnce(run, sample.customers, sample.shards);
    expect(held!.length).toBeGreaterThan(0);
    for (const shard of held!) {
      expect(run.events.find((e) => e.type === 'accepted' && e.shardId === shard)).toMatchObject({ worker: 'local-1' });
    }
    const acceptedFromIt = run.events.filter((e) => e.type === 'accepted' && e.worker === 'local-1').map((e) => (e as { shardId: string }).shardId);
    expect(acceptedFromIt.filter((s) => !held!.includes(s) && !before.includes(s))).toEqual([]);
    // Draining is not failing: nothing the worker did counts against a shard.
    expect(run.events.filter((e) => e.type === 'attempt-failed' && e.counted)).toEqual([]);
  });
});

test('Drain rpc with a short grace: unfinished shards are handed back, re-leased elsewhere, and the worker exits 0', async () => {
  await withCluster(
    { workers: 3, env: { NEXTBUY_ECHO_DELAY_MS: '60' }, envFor: (i): Record<string, string> => (i === 1 ? { NEXTBUY_DRAIN_GRACE_MS: '30' } : {}) },
    async ({ pool, process: proc }) => {
      const handle = pool.workers().find((w) => w.name === 'local-1')!;
      let drained: Promise<number> | null = null;
      const run = await scoreAll(pool, sample.shards, {
        targetPayloadBytes: 1,
        onEvent: (e) => {
          if (e.type === 'progress' && e.worker === 'local-1' && drained === null) drained = handle.drain('test asks');
        },
      });
      const handedBack = await drained!;
      expect(handedBack).toBeGreaterThan(0);
      expect((await proc('local-1').exited).code).toBe(0);
      expectEveryCustomerOnce(run, sample.customers, sample.shards);
      const back = run.events.filter((e) => e.type === 'attempt-failed' && e.worker === 'local-1');
      expect(back.length).toBeGreaterThanOrEqual(handedBack);
      for (const e of back) {
        expect(e).toMatchObject({ counted: false, retryInMs: 0 });
        expect(run.events.find((a) => a.type === 'accepted' && a.shardId === (e as { shardId: string }).shardId)).not.toMatchObject({ worker: 'local-1' });
      }
    },
  );
});
