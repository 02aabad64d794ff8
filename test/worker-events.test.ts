/**
 * Lost workers are visible: a worker killed during scoring gives coordinator log lines (the re-lease of
 * its shard, then its loss by heartbeat timeout), counts for the run summary, and Prometheus counters;
 * so does a worker that joins once the run has started.
 */
import { expect, test } from 'vitest';
import { createLogger } from '../core/log.js';
import { metrics } from '../core/metrics.js';
import { metricValue } from './helpers/metrics.js';
import { watchWorkers } from '../coordinator/pipeline/index.js';
import { scoreAll, withCluster, writeSampleShards } from './helpers/cluster.js';

test('a worker killed mid-shard is logged as lost (heartbeat timeout) with its shard re-leased, and counted', async () => {
  const sample = await writeSampleShards({ shards: 8, customersPerShard: 100, batchRows: 25, seed: 5 });
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ format: 'json', level: 'info', stream: { write: (s: string) => lines.push(...s.trim().split('\n').map((l) => JSON.parse(l))) } });
  const lostBefore = await metricValue(metrics.workersLost, { cause: 'heartbeat-timeout' });
  try {
    await withCluster({ workers: 3, env: { NEXTBUY_ECHO_DELAY_MS: '40' } }, async ({ pool, process: proc }) => {
      const watch = watchWorkers(pool, logger);
      const victim = proc('local-1');
      const left = new Promise<void>((resolve) => pool.on((e) => e.type === 'left' && e.worker.name === 'local-1' && resolve()));
      let killed = false;
      await scoreAll(pool, sample.shards, {
        targetPayloadBytes: 1,
        onEvent: (e) => {
          watch.onSchedule(e);
          if (e.type === 'progress' && e.worker === 'local-1' && !killed) {
            killed = true;
            victim.kill('SIGKILL');
          }
        },
      });
      await left;
      watch.stop();
      expect(watch.counts).toMatchObject({ lost: 1, heartbeatTimeouts: 1, lateJoins: 0 });
      expect(watch.counts.reLeases).toBeGreaterThanOrEqual(1);
    });
  } finally {
    await sample.cleanup();
  }
  expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', event: 'worker.lost', worker: 'local-1', cause: 'heartbeat timeout' }));
  expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', event: 'shard.re_leased', worker: 'local-1' }));
  expect(await metricValue(metrics.workersLost, { cause: 'heartbeat-timeout' })).toBe(lostBefore + 1);
}, 60_000);

test('a worker that joins after the run started is logged and counted as a late join', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ format: 'json', level: 'info', stream: { write: (s: string) => lines.push(...s.trim().split('\n').map((l) => JSON.parse(l))) } });
  const before = await metricValue(metrics.workerLateJoins);
  await withCluster({ workers: 1 }, async ({ pool, backend, waitForReady }) => {
    const watch = watchWorkers(pool, logger);
    backend.spawnWorker();
    await waitForReady(2);
    watch.stop();
    expect(watch.counts).toMatchObject({ lateJoins: 1, lost: 0 });
  });
  expect(lines).toContainEqual(expect.objectContaining({ level: 'info', event: 'worker.joined_late', worker: 'local-1', ready: 2 }));
  expect(await metricValue(metrics.workerLateJoins)).toBe(before + 1);
}, 60_000);
