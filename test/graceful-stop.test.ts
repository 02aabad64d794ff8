/**
 * Graceful stop: SIGTERM to a real `nextbuy run` during scoring stops leasing, lets the shards in flight
 * finish, saves state, stops the worker processes, logs it and exits 143; the same command then resumes.
 */
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';
import { EXIT_CODES, StoppedError } from '../core/errors.js';
import type { ScheduleEvent } from '../coordinator/schedule/index.js';
import { ROOT, runCli, taobaoJob } from './helpers/cli.js';
import { scoreAll, withCluster, writeSampleShards } from './helpers/cluster.js';
import { trainModel } from '../coordinator/train/index.js';
import { inProcessParticipants, syntheticSpec } from './helpers/train.js';
import { writeSyntheticShards } from './helpers/synthetic-shards.js';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';

/** The local worker processes a coordinator started (its other children, e.g. tsx's esbuild, are not workers). */
function workerPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => / --engine \S+ --name /.test(l))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('SIGTERM during scoring: exit 143 with workers stopped and state saved; the rerun resumes', async () => {
  const { conf } = await taobaoJob({
    products: { overall: true, topCategories: 0 },
    model: { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
    shards: { count: 4 },
    cluster: { workers: 2 },
  });
  const args = ['run', '--account', 'taobao', '--date', '2017-12-02', '--conf', conf];
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/nextbuy.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let workers: number[] = [];
  child.stderr.on('data', (d) => {
    stderr += d;
    if (workers.length === 0 && /"event":"stage\.start".*"stage":"score"/.test(stderr)) {
      workers = workerPids(child.pid!);
      child.kill('SIGTERM');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));

  expect(workers.length).toBe(2);
  expect(code).toBe(EXIT_CODES.STOPPED);
  expect(stderr).toMatch(/"event":"run\.stop_requested".*"signal":"SIGTERM"/);
  expect(stderr).toMatch(/"event":"run\.stopped".*"task":"(score|evaluate)".*"workersStopped":true.*"stateSaved":true/);
  expect(stderr).toMatch(/nextbuy: stopped by SIGTERM: finished work is saved/);
  for (const pid of workers) expect(alive(pid)).toBe(false);

  const again = await runCli(args);
  expect(again.code).toBe(0);
  expect(again.stderr).toMatch(/"event":"stage\.skipped".*"stage":"preprocess"/);
  expect(again.stderr).toMatch(/"event":"stage\.skipped".*"stage":"train"/);
}, 300_000);

test('a stop leases nothing more and lets the shards in flight finish and deliver before the run ends', async () => {
  const sample = await writeSampleShards({ shards: 12, customersPerShard: 60, batchRows: 20, seed: 9 });
  try {
    await withCluster({ workers: 2, env: { NEXTBUY_ECHO_DELAY_MS: '30' } }, async ({ pool }) => {
      const stop = new AbortController();
      const events: ScheduleEvent[] = [];
      let leasesAtStop = -1;
      const run = scoreAll(pool, sample.shards, {
        inFlightPerWorker: 2,
        stopSignal: stop.signal,
        stopGraceMs: 30_000,
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'accepted' && leasesAtStop < 0) {
            leasesAtStop = events.filter((x) => x.type === 'lease').length;
            stop.abort(new StoppedError('stopped by the test'));
          }
        },
      });
      await expect(run).rejects.toThrow(StoppedError);
      const leases = events.filter((e) => e.type === 'lease');
      const accepted = events.filter((e) => e.type === 'accepted');
      expect(leases.length).toBe(leasesAtStop); // nothing leased after the stop
      expect(leases.length).toBeLessThan(sample.shards.length);
      expect(accepted.length).toBe(leases.length); // every shard in flight finished and was accepted
    });
  } finally {
    await sample.cleanup();
  }
}, 60_000);

test('a stop during training ends before the next round (the epoch checkpoint stays); the rerun resumes from the checkpoint to the same weights', async () => {
  const tmp = (name: string) => mkdtemp(path.join(os.tmpdir(), `nextbuy-stop-${name}-`));
  const data = await writeSyntheticShards({ dir: await tmp('data'), customers: 400, shards: 4, maxLength: 10, seed: 8 });
  const spec = syntheticSpec(data, { maxLength: 10, embeddingDim: 4, hiddenUnits: 8, denseUnits: 4, batchSize: 32, seed: 5 });
  const common = { spec, datasetId: 'stop', shards: data.shards, epochs: 3, patience: 5, syncEverySteps: 2, replicas: 2 };
  const straight = await trainModel({ ...common, participants: inProcessParticipants(2), checkpointDir: await tmp('straight') });

  const dir = await tmp('stopped');
  const stop = new AbortController();
  const stopped = trainModel({
    ...common, participants: inProcessParticipants(2), checkpointDir: dir, stop: stop.signal,
    onEpoch: (m) => m.epoch === 2 && stop.abort(new StoppedError('stopped by the test')),
  });
  await expect(stopped).rejects.toThrow(StoppedError);
  const resumed = await trainModel({ ...common, participants: inProcessParticipants(2), checkpointDir: dir });
  expect(resumed.resumed).toBe(true);
  expect(resumed.history.map((h) => h.epoch)).toEqual([1, 2, 3]);
  expect(Buffer.from(resumed.weights.buffer).equals(Buffer.from(straight.weights.buffer))).toBe(true);
}, 120_000);
